package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/internal/testenv"
)

// login runs `orproxy login` through the broker with the test as the
// browser: it opens the printed URL and follows the redirects to the
// command's callback server.
func (s *stack) login() {
	s.t.Helper()
	s.runLogin(func(loginURL string) string {
		resp, err := httpClient.Get(loginURL) // the broker redirects to the callback
		require.NoError(s.t, err)
		defer resp.Body.Close()
		page, err := io.ReadAll(resp.Body)
		require.NoError(s.t, err)
		require.Equal(s.t, http.StatusOK, resp.StatusCode, "%s", page)
		return string(page)
	})
	require.FileExists(s.t, s.credFile)
}

// loginRun is what one `orproxy login` showed: its output and the page the
// browser ended on.
type loginRun struct{ stdout, stderr, page string }

// runLogin runs `orproxy login --no-browser` with args, plays the browser
// with browse once the command prints the address to open, and requires the
// login to succeed.
func (s *stack) runLogin(browse func(loginURL string) string, args ...string) loginRun {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "orproxy"), append([]string{"--config", s.configFile, "login", "--no-browser"}, args...)...)
	cmd.Env = s.env
	stdout, err := cmd.StdoutPipe()
	require.NoError(s.t, err)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	require.NoError(s.t, cmd.Start())

	var printed strings.Builder
	sc := bufio.NewScanner(stdout)
	loginURL := ""
	for loginURL == "" && sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		printed.WriteString(line + "\n")
		if strings.HasPrefix(line, "http://") || strings.HasPrefix(line, "https://") {
			loginURL = line
		}
	}
	require.NotEmpty(s.t, loginURL, "login printed no URL: %s %s", printed.String(), stderr.String())
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stdout); rest <- string(b) }()
	page := browse(loginURL)
	// All of stdout is read before Wait, which closes the pipe.
	printed.WriteString(<-rest)
	require.NoError(s.t, cmd.Wait(), "login failed: %s", stderr.String())
	return loginRun{stdout: printed.String(), stderr: stderr.String(), page: page}
}
