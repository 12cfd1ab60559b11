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

	"github.com/orproxy/orproxy/auth"
	"github.com/orproxy/orproxy/internal/config"
)

// statusReport is `orproxy status --json`. It holds no secret.
type statusReport struct {
	Credential auth.Status  `json:"credential"`
	Daemon     daemonReport `json:"daemon"`
}

type daemonReport struct {
	Address   string          `json:"address"`
	Answering bool            `json:"answering"`
	Problem   string          `json:"problem,omitempty"`
	Status    json.RawMessage `json:"status,omitempty"`
}

func newStatusCmd(g *globalFlags, s streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the stored credential (key redacted) and whether a daemon answers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, store, err := loadStore(g, cmd, nil)
			if err != nil {
				return err
			}
			rep := statusReport{Credential: auth.Describe(store, cfg.Broker.URL)}
			rep.Daemon = queryDaemon(cmd.Context(), cfg.Config)
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printStatus(s.out, rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// queryDaemon asks a daemon at the configured address for its /status.
func queryDaemon(ctx context.Context, cfg config.Config) daemonReport {
	addr, err := config.DialAddress(cfg.Listen)
	if err != nil {
		return daemonReport{Problem: err.Error()}
	}
	rep := daemonReport{Address: "http://" + addr}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.Address+"/status", nil)
	if err != nil {
		rep.Problem = err.Error()
		return rep
	}
	if cfg.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AccessToken)
	}
	// Never through HTTPS_PROXY: the daemon is on this machine.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		rep.Problem = "not answering (" + shortNetError(err) + "); start it with `orproxy serve` or `orproxy service start`"
		return rep
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || !json.Valid(body) {
		rep.Problem = fmt.Sprintf("something answers at this address, but not like orproxy (%s)", resp.Status)
		return rep
	}
	rep.Answering, rep.Status = true, body
	return rep
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
	}
	d := rep.Daemon
	if d.Answering {
		var st struct {
			Version  string `json:"version"`
			Requests struct {
				Total int `json:"total"`
			} `json:"requests"`
			Credential auth.Status `json:"credential"`
		}
		_ = json.Unmarshal(d.Status, &st)
		fmt.Fprintf(tw, "Daemon\t%s answers (version %s)\n", d.Address, st.Version)
		fmt.Fprintf(tw, "  serving key\t%s\n", orNone(st.Credential.Key))
		fmt.Fprintf(tw, "  requests\t%d\n", st.Requests.Total)
		fmt.Fprintf(tw, "  rotations\t%d\n", st.Credential.RotationCount)
		if st.Credential.LastRotationError != "" {
			fmt.Fprintf(tw, "  last rotation error\t%s\n", st.Credential.LastRotationError)
		}
		if st.Credential.SaveError != "" {
			fmt.Fprintf(tw, "  save error\t%s\n", st.Credential.SaveError)
		}
	} else {
		fmt.Fprintf(tw, "Daemon\t%s: %s\n", d.Address, d.Problem)
	}
	_ = tw.Flush()
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}

func relative(t time.Time) string {
	d := time.Until(t).Round(time.Minute)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}
