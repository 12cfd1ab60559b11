package login

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/humantime"
	"github.com/orproxy/orproxy/internal/secret"
)

// errNoBroker is the broker method without a configured broker.
var errNoBroker = errors.New("no broker is configured: set broker.url or ORPROXY_BROKER_URL, or use --method openrouter|key")

// startPath is the broker's start page, below its base URL.
const startPath = "/auth/openrouter/start"

// broker runs the broker login: the browser goes through the broker's start
// page, which sends it back to the callback server with a code; the broker
// trades the code for a key and a refresh token.
func (l *flow) broker(ctx context.Context) (*auth.Credential, error) {
	if l.opts.Broker == nil {
		return nil, errNoBroker
	}
	return l.browserFlow(ctx, "Open this address in a browser to log in through the broker:", !l.opts.ReturnToWithoutState,
		func(callback string) (string, error) {
			u, err := l.opts.Broker.StartURL(ctx, callback)
			if err != nil {
				return "", l.brokerStartError(err)
			}
			l.log.Debug("broker login started", zap.String("broker", l.opts.Broker.BaseURL()), zap.String("callback", callback))
			if strings.HasPrefix(u, l.opts.Broker.BaseURL()+startPath) {
				// The browser is to do the start request: make sure the
				// broker is there before sending the user to it and
				// waiting minutes for a browser that can only fail.
				if err := l.checkBroker(ctx, u); err != nil {
					return "", err
				}
			}
			return u, nil
		},
		l.brokerExchange)
}

// checkBroker asks the start page the browser will open. Any HTTP answer
// means the broker is up, except a 404, which means broker.url names
// something else; no answer within broker.timeout means it is down or out
// of reach.
func (l *flow) checkBroker(ctx context.Context, startURL string) error {
	status, err := l.opts.Broker.Probe(ctx, startURL)
	switch {
	case err != nil:
		return l.brokerUnreachable(err)
	case status == http.StatusNotFound:
		return l.brokerNotFound()
	case refusesReturnTo(status) && !l.opts.ReturnToWithoutState:
		// The broker is up, and the browser will see the same refusal;
		// the user should know what may cure it before waiting.
		l.say("The broker answered %d %s to the start address. %s", status, http.StatusText(status), returnToHint)
	}
	return nil
}

// refusesReturnTo reports whether a start page answering status may be
// refusing the return_to it got: a broker that compares return_to with its
// registered address exactly answers a bad request.
func refusesReturnTo(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusUnprocessableEntity
}

// returnToHint is what cures a broker that refuses return_to for its query.
const returnToHint = "If the broker refuses return_to, it probably matches it exactly: set broker.return_to_state: false (and login.callback_port, if it expects a fixed port)."

// brokerStartError words a failed start request (made by orproxy itself
// when broker.start_headers are set) like checkBroker does.
func (l *flow) brokerStartError(err error) error {
	var be *auth.BrokerError
	if errors.As(err, &be) {
		switch {
		case be.Status == 0 && be.Err != nil:
			cause := be.Err
			var ue *url.Error
			if errors.As(cause, &ue) {
				cause = ue.Err
			}
			return l.brokerUnreachable(cause)
		case be.Status == http.StatusNotFound:
			return l.brokerNotFound()
		case refusesReturnTo(be.Status) && !l.opts.ReturnToWithoutState:
			return fmt.Errorf("start the broker login: %w. %s", err, returnToHint)
		}
	}
	return fmt.Errorf("start the broker login: %w", err)
}

func (l *flow) brokerUnreachable(cause error) error {
	where := secret.RedactURL(l.opts.Broker.BaseURL())
	var ne net.Error
	if errors.Is(cause, context.DeadlineExceeded) || (errors.As(cause, &ne) && ne.Timeout()) {
		return fmt.Errorf("the broker at broker.url %s did not answer within %s (broker.timeout); check broker.url (or %s) and that this machine can reach it (company network or VPN)",
			where, humantime.Duration(l.opts.Broker.Timeout()), envBrokerURL)
	}
	return fmt.Errorf("the broker at broker.url %s does not answer (%v); check broker.url (or %s) and that this machine can reach it (company network or VPN)",
		where, shortCause(cause), envBrokerURL)
}

func (l *flow) brokerNotFound() error {
	return fmt.Errorf("broker.url %s answered 404 at %s: the URL is probably wrong; check broker.url (or %s)",
		secret.RedactURL(l.opts.Broker.BaseURL()), startPath, envBrokerURL)
}

// envBrokerURL is the environment variable that sets broker.url; the login
// package does not import the config loader for one name.
const envBrokerURL = "ORPROXY_BROKER_URL"

// shortCause drops the "dial tcp 127.0.0.1:1:" preamble of a network error:
// the address is in the message already.
func shortCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func (l *flow) brokerExchange(ctx context.Context, a arrival) (*auth.Credential, error) {
	l.say("Got the answer; asking the broker for a key ...")
	bc, err := l.opts.Broker.Exchange(ctx, a.code)
	if err != nil {
		return nil, fmt.Errorf("exchange the login code: %w", err)
	}
	if bc.RefreshToken.IsZero() {
		l.say("Warning: the broker sent no refresh token, so orproxy cannot rotate this key; when it stops working, run `orproxy login` again.")
	}
	return l.finish(ctx, bc.Credential(l.opts.Broker.BaseURL()), "through the broker")
}
