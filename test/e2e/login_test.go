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
)

// login runs `orproxy login` through the broker with the test as the
// browser: it opens the printed URL and follows the redirects to the
// command's callback server.
func (s *stack) login() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "orproxy"), "--config", s.configFile, "login", "--no-browser")
	cmd.Env = s.env
	stdout, err := cmd.StdoutPipe()
	require.NoError(s.t, err)
	stderr := &syncBuffer{}
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
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	resp, err := httpClient.Get(loginURL) // the broker redirects to the callback
	require.NoError(s.t, err)
	resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode)
	require.NoError(s.t, cmd.Wait(), "login failed: %s", stderr.String())
	require.FileExists(s.t, s.credFile)
}
