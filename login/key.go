package login

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"golang.org/x/term"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/secret"
)

// maxKeyLen bounds a pasted key; OpenRouter keys are 73 characters.
const maxKeyLen = 1024

// pastedKey stores a key the user pastes on Stdin (never argv, which other
// users can read in the process list) after asking OpenRouter about it.
func (l *flow) pastedKey(ctx context.Context) (*auth.Credential, error) {
	// A bad upstream would make the check fail like a network error and the
	// key be stored unchecked; say so before the user pastes anything.
	if _, err := origin(l.opts.Upstream); err != nil {
		return nil, err
	}
	key, err := l.readKey(ctx)
	if err != nil {
		return nil, err
	}
	c := &auth.Credential{Source: auth.SourceManual, APIKey: key, KeyHash: auth.KeyHash(key)}
	info, err := auth.CheckKey(ctx, l.opts.HTTP, l.opts.Upstream, key)
	var rejected *auth.KeyRejectedError
	switch {
	case errors.As(err, &rejected):
		return nil, fmt.Errorf("%w; nothing was stored. Check that you pasted the whole key", err)
	case err != nil:
		l.say("Warning: could not check the key with OpenRouter (%v); storing it anyway.", err)
	default:
		c.KeyLabel, c.KeyExpiresAt = info.Label, info.ExpiresAt
	}
	return l.finish(ctx, c, "with a pasted key")
}

// readKey reads one key from Stdin, without echo on a terminal.
func (l *flow) readKey(ctx context.Context) (secret.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	var line string
	if fd, ok := terminalFd(l.opts.Stdin); ok && l.opts.StdinIsTerminal {
		restore, err := disableEcho(fd)
		if err != nil {
			return secret.Secret{}, fmt.Errorf("read key from terminal: %w", err)
		}
		// Also restores echo when ctx ends while the read is still pending.
		defer restore()
		l.say("Paste your OpenRouter API key and press Enter (it is not shown): ")
		s, err := readPassword(ctx, fd)
		l.say("")
		if err != nil {
			return secret.Secret{}, err
		}
		line = s
	} else {
		if l.opts.StdinIsTerminal {
			l.say("Paste your OpenRouter API key and press Enter: ")
		}
		for {
			s, ok := l.stdinLines().next(ctx)
			if !ok {
				if ctx.Err() != nil {
					return secret.Secret{}, fmt.Errorf("no key read within %v: %w", l.opts.Timeout, context.Cause(ctx))
				}
				return secret.Secret{}, errors.New("no key on standard input; pipe it in, e.g. `orproxy login --method key < keyfile`")
			}
			if strings.TrimSpace(s) != "" {
				line = s
				break
			}
		}
	}
	key := strings.TrimSpace(line)
	switch {
	case key == "":
		return secret.Secret{}, errors.New("no key was entered")
	case len(key) > maxKeyLen:
		return secret.Secret{}, errors.New("that is too long to be an OpenRouter key")
	case strings.ContainsFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return secret.Secret{}, errors.New("the key contains spaces or control characters; paste only the key")
	}
	return secret.New(key), nil
}

type fder interface{ Fd() uintptr }

func terminalFd(r io.Reader) (int, bool) {
	f, ok := r.(fder)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// readPassword reads a line without echo. The read cannot be abandoned, so
// when ctx ends first the caller restores the terminal and the pending read
// ends with the process.
func readPassword(ctx context.Context, fd int) (string, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := readHiddenLine(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return "", fmt.Errorf("read key from terminal: %w", r.err)
		}
		return string(r.b), nil
	case <-ctx.Done():
		return "", fmt.Errorf("no key read: %w", context.Cause(ctx))
	}
}
