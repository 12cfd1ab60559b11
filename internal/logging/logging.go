// Package logging builds orproxy's zap logger: human console output on a
// terminal, JSON otherwise, and an encoder that scrubs credentials from every
// line whatever the field type, as the last line of defence behind secret.Secret.
package logging

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/orproxy/orproxy/internal/secret"
)

// Options configure New.
type Options struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is auto, console or json; auto picks console when Output is a terminal.
	Format string
	// Output receives the log; nil means os.Stderr.
	Output io.Writer
	// Scrubber, when set, also removes the credentials it knows about.
	Scrubber *Scrubber
}

// New returns a logger writing to opts.Output.
func New(opts Options) (*zap.Logger, error) {
	out := opts.Output
	if out == nil {
		out = os.Stderr
	}
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(opts.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", opts.Level, err)
	}
	tty := IsTerminal(out)
	format := opts.Format
	if format == "" || format == "auto" {
		format = "json"
		if tty {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		if tty {
			cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(cfg)
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	default:
		return nil, fmt.Errorf("log format %q: allowed are auto, console, json", opts.Format)
	}
	enc = &scrubbingEncoder{Encoder: enc, scrubber: opts.Scrubber}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(out)))), nil
}

// IsTerminal reports whether w is a terminal. Being a character device is
// not enough: /dev/null is one too, and a service or a script that gives it
// as stdin or stderr must not get prompts or colours.
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// Scrubber holds the raw values of the credentials in use, so that a value
// which reaches a log line untyped (inside an upstream error message, say) is
// still replaced by its fingerprint. Safe for concurrent use.
type Scrubber struct {
	known atomic.Pointer[[]knownSecret]
}

// knownSecret is a credential and its fingerprint, both ready for
// bytes.ReplaceAll, so scrubbing a log line converts nothing.
type knownSecret struct{ raw, redacted []byte }

// Set replaces the known credentials; zero values are ignored.
func (s *Scrubber) Set(secrets ...secret.Secret) {
	vals := make([]knownSecret, 0, len(secrets))
	for _, v := range secrets {
		// Very short values would match ordinary text; they are not real credentials.
		if raw := v.Reveal(); len(raw) >= 8 {
			vals = append(vals, knownSecret{raw: []byte(raw), redacted: []byte(secret.Redact(raw))})
		}
	}
	s.known.Store(&vals)
}

func (s *Scrubber) scrub(b []byte) []byte {
	if s == nil {
		return b
	}
	p := s.known.Load()
	if p == nil {
		return b
	}
	for _, k := range *p {
		if bytes.Contains(b, k.raw) {
			b = bytes.ReplaceAll(b, k.raw, k.redacted)
		}
	}
	return b
}

var (
	// OpenRouter keys, whatever field or message carries them.
	keyPattern = regexp.MustCompile(`sk-or-[A-Za-z0-9_-]{8,}`)
	// Any bearer credential, e.g. a header dumped into an error.
	bearerPattern = regexp.MustCompile(`(?i)(bearer\s+)([^\s"'\\,]{8,})`)
)

// Scrub removes credentials from s: OpenRouter keys, bearer tokens and, with a
// Scrubber, every known credential. It is what the log encoder applies; other
// output paths that print foreign text (upstream or broker messages) use it too.
func Scrub(s string, sc *Scrubber) string {
	return string(scrubBytes([]byte(s), sc))
}

func scrubBytes(b []byte, sc *Scrubber) []byte {
	b = sc.scrub(b)
	if bytes.Contains(b, []byte("sk-or-")) {
		b = keyPattern.ReplaceAllFunc(b, func(m []byte) []byte { return []byte(secret.Redact(string(m))) })
	}
	if bytes.Contains(b, []byte("earer")) || bytes.Contains(b, []byte("EARER")) {
		b = bearerPattern.ReplaceAllFunc(b, func(m []byte) []byte {
			sub := bearerPattern.FindSubmatch(m)
			return append(append([]byte{}, sub[1]...), secret.Redact(string(sub[2]))...)
		})
	}
	return b
}

// scrubbingEncoder scrubs the finished line, so it covers the message, every
// field kind, With-context and errors alike.
type scrubbingEncoder struct {
	zapcore.Encoder
	scrubber *Scrubber
}

func (e *scrubbingEncoder) Clone() zapcore.Encoder {
	return &scrubbingEncoder{Encoder: e.Encoder.Clone(), scrubber: e.scrubber}
}

var pool = buffer.NewPool()

func (e *scrubbingEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return buf, err
	}
	clean := scrubBytes(buf.Bytes(), e.scrubber)
	if bytes.Equal(clean, buf.Bytes()) {
		return buf, nil
	}
	out := pool.Get()
	_, _ = out.Write(clean)
	buf.Free()
	return out, nil
}
