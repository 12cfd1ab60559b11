package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orproxy/orproxy/account"
	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
	"github.com/orproxy/orproxy/internal/humantime"
	"github.com/orproxy/orproxy/internal/netaddr"
	"github.com/orproxy/orproxy/internal/statusdoc"
	"github.com/orproxy/orproxy/internal/tlsenv"
	"github.com/orproxy/orproxy/ledger"
	"github.com/orproxy/orproxy/service"
)

// statusReport is `orproxy status --json`. It holds no secret.
type statusReport struct {
	// Usable says a credential is stored that is readable, unexpired and not
	// known to be rejected; the exit code says the same (0 or 1).
	Usable bool `json:"usable"`
	// Problem says why the credential is not usable, and what to do.
	Problem string `json:"problem,omitempty"`
	// KeyCheck says how the key was judged: by the running daemon, by
	// OpenRouter, or that OpenRouter could not be asked.
	KeyCheck   string               `json:"key_check,omitempty"`
	Credential statusdoc.Credential `json:"credential"`
	Daemon     daemonReport         `json:"daemon"`
	// Money is the key's limit and what was spent, in words: from the
	// daemon's /status, or without one, the ledger's spend.
	Money string `json:"money,omitempty"`
}

type daemonReport struct {
	Address   string `json:"address"`
	Answering bool   `json:"answering"`
	Problem   string `json:"problem,omitempty"`
	// Status is the daemon's /status as it came, so that --json shows
	// what the daemon said, fields this version does not know included.
	Status json.RawMessage `json:"status,omitempty"`
	// doc is Status read, when Answering.
	doc statusdoc.Document
}

// keyCheckTimeout bounds the question to OpenRouter when no daemon answers:
// status is asked by people and scripts waiting for it. A variable for tests.
var keyCheckTimeout = 5 * time.Second

func newStatusCmd(g *globalFlags, s streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the stored credential (key redacted) and whether a daemon answers",
		Long: `Show the stored credential (key redacted) and whether a daemon answers.

Exits 0 when a usable credential is stored and 1 when there is none or it is
unusable: unreadable, expired, or rejected by OpenRouter. Whether OpenRouter
rejects the key is asked of the running daemon or, without one, of
OpenRouter itself (GET /key); when OpenRouter cannot be reached the key
counts as usable.`,
		Example: `  orproxy status
  orproxy status --json | jq .credential
  orproxy status >/dev/null && echo "logged in"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadStore(g, cmd, nil)
			if err != nil {
				return err
			}
			rep := statusReport{Credential: auth.Describe(store, cfg.Broker.URL)}
			rep.Daemon = queryDaemon(cmd.Context(), cfg.Config)
			judgeCredential(cmd.Context(), &rep, cfg.Config, store)
			rep.Money = describeMoney(cmd.Context(), cfg, rep.Daemon)
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printStatus(s.out, rep)
			}
			if !rep.Usable {
				return errors.New(rep.Problem)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// judgeCredential decides whether the stored credential is usable: the file
// must hold an unexpired key (auth.Describe's verdict), and then the running
// daemon's verdict counts, or without a daemon, OpenRouter's answer.
func judgeCredential(ctx context.Context, rep *statusReport, cfg config.Config, store *auth.Store) {
	defer func() {
		// The credential section agrees with the verdict on it.
		rep.Credential.Usable, rep.Credential.Problem = rep.Usable, rep.Problem
	}()
	c := &rep.Credential
	if !c.Usable {
		rep.Problem = c.Problem
		return
	}
	if rep.Daemon.Answering {
		rep.KeyCheck = "by the daemon"
		// A daemon always gives a problem with its "not usable"; one from
		// before the verdict was part of /status gives neither, and
		// knows of no rejection.
		if d := rep.Daemon.doc.Credential; !d.Usable && d.Problem != "" {
			rep.Problem = d.Problem
			return
		}
		rep.Usable = true
		return
	}
	cred, err := store.Load()
	if err != nil {
		// Changed since Describe read it a moment ago.
		rep.Problem = err.Error()
		return
	}
	rep.Usable = true
	transport, err := tlsenv.Transport()
	if err != nil {
		rep.KeyCheck = "not asked: " + err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, keyCheckTimeout)
	defer cancel()
	_, err = auth.CheckKey(ctx, &http.Client{Transport: transport, Timeout: keyCheckTimeout}, cfg.Upstream, cred.APIKey)
	switch {
	case err == nil:
		rep.KeyCheck = "OpenRouter accepts the key"
	case auth.IsKeyRejected(err):
		rep.Usable = false
		rep.Problem = fmt.Sprintf("the stored key %s is not usable: %v; run %s", c.Key, err, c.Renewal())
	default:
		// Offline, a timeout or a 5xx says nothing about the key.
		rep.KeyCheck = "OpenRouter could not be asked (" + shortNetError(err) + "); the key is not known to be rejected"
	}
}

// queryDaemon asks a daemon at the configured address for its /status.
func queryDaemon(ctx context.Context, cfg config.Config) daemonReport {
	addr, err := netaddr.DialAddress(cfg.Listen)
	if err != nil {
		return daemonReport{Problem: err.Error()}
	}
	rep := daemonReport{Address: "http://" + addr}
	const timeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.Address+"/status", nil)
	if err != nil {
		rep.Problem = err.Error()
		return rep
	}
	if cfg.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AccessToken)
	}
	client := service.LocalClient(timeout)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		rep.Problem = "not answering (" + shortNetError(err) + "); start it with `orproxy serve` or `orproxy service start`"
		return rep
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rep.doc) != nil {
		rep.Problem = fmt.Sprintf("something answers at this address, but not like orproxy (%s)", resp.Status)
		return rep
	}
	rep.Answering, rep.Status = true, body
	return rep
}

// describeMoney is the money line: the running daemon knows the key's limit
// (it reads GET /key while requests flow) and the ledger's spend; without
// one, the ledger alone says what was spent.
func describeMoney(ctx context.Context, cfg *config.Loaded, d daemonReport) string {
	if d.Answering {
		return account.Describe(d.doc.Credits, d.doc.Spend)
	}
	const limit = "the key's limit shows while the daemon runs"
	spend, err := ledgerSpend(ctx, cfg)
	switch {
	case errors.Is(err, ledger.ErrNoLedger) && !cfg.Usage.Enabled:
		return "not recorded (usage.enabled is off); " + limit
	case errors.Is(err, ledger.ErrNoLedger):
		return "nothing recorded yet; " + limit
	case err != nil:
		return "spend unknown: " + err.Error()
	}
	return account.DescribeSpend(spend) + " (from the ledger); " + limit
}

// ledgerSpend reads today's and this month's spend from the ledger, which
// it only reads.
func ledgerSpend(ctx context.Context, cfg *config.Loaded) (*statusdoc.Spend, error) {
	path, err := ledger.PathFor(cfg.Usage.File)
	if err != nil {
		return nil, err
	}
	r, err := ledger.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer r.Close() //nolint:errcheck // read only
	now, loc := usageClock()
	now = now.In(loc)
	y, m, d := now.Date()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sp, err := r.SpendSince(ctx, time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, 1, 0, 0, 0, 0, loc))
	if err != nil {
		return nil, err
	}
	return &statusdoc.Spend{
		TodayUSD: sp.Day.CostUSD, MonthUSD: sp.Month.CostUSD,
		WebSearchesToday: sp.Day.WebSearches, UnknownCostToday: sp.Day.UnknownCost,
	}, nil
}

func shortNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func printStatus(w io.Writer, rep statusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := rep.Credential
	fmt.Fprintf(tw, "Credential file\t%s\n", c.File)
	switch {
	case c.FileError != "":
		fmt.Fprintf(tw, "  problem\t%s\n", c.FileError)
	case !c.LoggedIn:
		fmt.Fprintf(tw, "  state\tnot logged in; run `orproxy login`\n")
	default:
		fmt.Fprintf(tw, "  source\t%s\n", c.Source)
		fmt.Fprintf(tw, "  key\t%s\n", c.Key)
		if c.Label != "" {
			fmt.Fprintf(tw, "  label\t%s\n", c.Label)
		}
		if c.Hash != "" {
			fmt.Fprintf(tw, "  hash\t%s\n", c.Hash)
		}
		if c.ExpiresAt != nil {
			fmt.Fprintf(tw, "  expires\t%s (%s)\n", c.ExpiresAt.Format(time.RFC3339), relative(*c.ExpiresAt))
		}
		if c.UpdatedAt != nil {
			fmt.Fprintf(tw, "  updated\t%s (%s)\n", c.UpdatedAt.Format(time.RFC3339), relative(*c.UpdatedAt))
		}
		rot := "no (log in again when OpenRouter rejects it)"
		if c.CanRotate {
			rot = "yes, through the broker"
		}
		fmt.Fprintf(tw, "  rotation\t%s\n", rot)
		if rep.KeyCheck != "" {
			fmt.Fprintf(tw, "  checked\t%s\n", rep.KeyCheck)
		}
	}
	d := rep.Daemon
	if d.Answering {
		st := d.doc
		fmt.Fprintf(tw, "Daemon\t%s answers (version %s)\n", d.Address, st.Version)
		fmt.Fprintf(tw, "  serving key\t%s\n", orNone(st.Credential.Key))
		fmt.Fprintf(tw, "  requests\t%d\n", st.Requests.Total)
		fmt.Fprintf(tw, "  rotations\t%d\n", st.Credential.RotationCount)
		if st.WarmConnection != nil {
			fmt.Fprintf(tw, "  upstream connection\t%s\n", describeWarm(*st.WarmConnection, time.Now()))
		}
		if st.Credential.LastRotationError != "" {
			fmt.Fprintf(tw, "  last rotation error\t%s\n", st.Credential.LastRotationError)
		}
		if st.Credential.SaveError != "" {
			fmt.Fprintf(tw, "  save error\t%s\n", st.Credential.SaveError)
		}
	} else {
		fmt.Fprintf(tw, "Daemon\t%s: %s\n", d.Address, d.Problem)
	}
	if rep.Money != "" {
		fmt.Fprintf(tw, "Money\t%s\n", rep.Money)
	}
	_ = tw.Flush()
}

// describeWarm says in words whether the daemon holds an upstream
// connection, so that the next request skips the handshakes, and why.
func describeWarm(w statusdoc.WarmConnection, now time.Time) string {
	last := "since the daemon started"
	if !w.LastUsed.IsZero() {
		last = "last request " + humantime.Relative(w.LastUsed, now)
	}
	window := humantime.Duration(time.Duration(w.RecentUseSeconds) * time.Second)
	switch {
	case !w.Enabled && w.Held:
		return "open now, but not kept warm (keepalive.enabled is off)"
	case !w.Enabled:
		return "none open; not kept warm (keepalive.enabled is off)"
	case now.Before(w.KeptUntil) && w.Held:
		return fmt.Sprintf("warm, kept open %s more (%s; keepalive.recent_use %s)", humantime.Duration(w.KeptUntil.Sub(now)), last, window)
	case now.Before(w.KeptUntil):
		s := "none open; reopening it"
		if w.LastError != "" && !w.LastErrorAt.Before(w.LastWarmup) {
			s += " (" + w.LastError + ")"
		}
		return s
	}
	return fmt.Sprintf("not kept: no request within keepalive.recent_use (%s; %s); the next request opens one", window, last)
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}

// relative says when t is, in words: "in 30 days", "3 hours ago".
func relative(t time.Time) string { return humantime.Relative(t, time.Now()) }
