package login

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/term"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/secret"
)

// maxKeyLen bounds what is read as a pasted key; OpenRouter keys are 73
// characters, and anything past keyShape's bound is refused anyway.
const maxKeyLen = 1024

// keyShape is what an OpenRouter API key looks like: sk-or-, then letters,
// digits, '-' and '_', 20 to 200 characters in all. It catches a paste of
// the wrong thing (a refresh token, a line of a file, half a key) before it
// is sent anywhere.
var keyShape = regexp.MustCompile(`^sk-or-[A-Za-z0-9_-]{14,194}$`)

// pastedKey stores a key the user pastes on Stdin (never argv, which other
// users can read in the process list) after asking OpenRouter about it.
func (l *flow) pastedKey(ctx context.Context) (*auth.Credential, error) {
	// A bad upstream would make the check fail like a network error and the
	// key be stored unchecked; say so before the user pastes anything.
	if _, err := origin(l.opts.Upstream); err != nil {
		return nil, err
	}
	if err := l.mayReplaceStored(ctx); err != nil {
		return nil, err
	}
	key, err := l.readKey(ctx)
	if err != nil {
		return nil, err
	}
	if !keyShape.MatchString(key.Reveal()) {
		// Never quoted: it may be some other secret pasted by mistake.
		return nil, errors.New("that is not an OpenRouter API key (one starts with sk-or- and has 20 to 200 letters, digits, - and _); nothing was stored. Copy the key again from https://openrouter.ai/settings/keys")
	}
	c := &auth.Credential{Source: auth.SourceManual, APIKey: key, KeyHash: auth.KeyHash(key)}
	info, err := auth.CheckKey(ctx, l.opts.HTTP, l.opts.Upstream, key)
	var rejected *auth.KeyRejectedError
	switch {
	case errors.As(err, &rejected):
		return nil, fmt.Errorf("%w; nothing was stored. Check that you pasted the whole key", err)
	case err != nil && !l.opts.Force:
		return nil, fmt.Errorf("could not check the key with OpenRouter (%v); nothing was stored. Try again when OpenRouter can be reached, or pass --force to store the key unchecked", err)
	case err != nil:
		l.say("Warning: could not check the key with OpenRouter (%v); storing it unchecked, as --force asks.", err)
	default:
		c.KeyLabel, c.KeyExpiresAt = info.Label, info.ExpiresAt
	}
	return l.finish(ctx, c, "with a pasted key")
}

// mayReplaceStored guards a broker login, which rotates by itself, from
// being replaced for good by a pasted key: the user says yes on a terminal,
// or passes --force.
func (l *flow) mayReplaceStored(ctx context.Context) error {
	if l.opts.Force {
		return nil
	}
	cur, err := l.store.Load()
	if err != nil || cur.Source != auth.SourceBroker {
		// Nothing stored, a key of the user's own, or a file that cannot
		// be read (saving backs it up first): nothing to lose.
		return nil
	}
	if !l.opts.StdinIsTerminal {
		return fmt.Errorf("the stored credential (%s) is a broker login, which orproxy rotates automatically, and a pasted key would replace it; pass --force to replace it", cur.APIKey)
	}
	l.say("The stored credential (%s) is a broker login.", cur.APIKey)
	yes, err := l.confirm(ctx, "Replace the broker login (it rotates automatically)? [y/N] ")
	if err != nil {
		return err
	}
	if !yes {
		return errors.New("the broker login was kept; nothing was stored")
	}
	return nil
}

// confirm asks a yes/no question on the terminal; only y or yes is yes.
func (l *flow) confirm(ctx context.Context, question string) (bool, error) {
	fmt.Fprint(l.stderr, question)
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	var answer string
	if fd, ok := terminalFd(l.opts.Stdin); ok {
		// Straight from the terminal, like the key after it, so that no
		// line reader is left holding the terminal for the key.
		s, err := readTerminalLine(ctx, fd, "answer")
		if err != nil {
			return false, err
		}
		answer = s
	} else {
		s, ok := l.stdinLines().next(ctx)
		if !ok {
			if ctx.Err() != nil {
				return false, fmt.Errorf("no answer: %w", context.Cause(ctx))
			}
			return false, errors.New("no answer: input ended")
		}
		answer = s
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
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
		s, err := readTerminalLine(ctx, fd, "key")
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

// readTerminalLine reads a line from the terminal as it is set (the key:
// without echo). The read cannot be abandoned, so when ctx ends first the
// caller restores the terminal and the pending read ends with the process.
// what names the line in errors.
func readTerminalLine(ctx context.Context, fd int, what string) (string, error) {
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
			return "", fmt.Errorf("read %s from terminal: %w", what, r.err)
		}
		return string(r.b), nil
	case <-ctx.Done():
		return "", fmt.Errorf("no %s read: %w", what, context.Cause(ctx))
	}
}
