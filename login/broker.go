package login

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/orproxy/orproxy/auth"
)

// errNoBroker is the broker method without a configured broker.
var errNoBroker = errors.New("no broker is configured: set broker.url or ORPROXY_BROKER_URL, or use --method openrouter|key")

// broker runs the broker login: the browser goes through the broker's start
// page, which sends it back to the callback server with a code; the broker
// trades the code for a key and a refresh token.
func (l *flow) broker(ctx context.Context) (*auth.Credential, error) {
	if l.opts.Broker == nil {
		return nil, errNoBroker
	}
	return l.browserFlow(ctx, "Open this address in a browser to log in through the broker:",
		func(callback string) (string, error) {
			u, err := l.opts.Broker.StartURL(ctx, callback)
			if err != nil {
				return "", fmt.Errorf("start the broker login: %w", err)
			}
			l.log.Debug("broker login started", zap.String("broker", l.opts.Broker.BaseURL()), zap.String("callback", callback))
			return u, nil
		},
		l.brokerExchange)
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
