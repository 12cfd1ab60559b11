package ledger

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// killHelperEnv names the ledger the helper process writes to.
const killHelperEnv = "ORPROXY_LEDGER_KILL_HELPER"

// runKillHelper is the process TestSIGKILL kills: it writes a row every
// millisecond, with the default flush interval, until killed.
func runKillHelper(path string) {
	w, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w.Add(sampleRow(time.Now()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = w.Flush(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	// Bounded, in case the parent dies without killing it.
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
		w.Add(sampleRow(time.Now()))
		time.Sleep(time.Millisecond)
	}
	os.Exit(3)
}

func TestSIGKILLLosesAtMostTheLastSecond(t *testing.T) {
	// Killed right after a batch was written, halfway to the next, and just
	// before it: the worst case for what is lost.
	for _, after := range []time.Duration{0, DefaultFlushInterval / 2, DefaultFlushInterval * 9 / 10} {
		t.Run(after.String(), func(t *testing.T) { killWhileWriting(t, after) })
	}
}

// killWhileWriting kills a writing process the given time after it wrote a
// batch and checks what survived.
func killWhileWriting(t *testing.T, after time.Duration) {
	path := testPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		require.Equal(t, "ready\n", line)
	case <-time.After(60 * time.Second):
		t.Fatal("the helper never wrote its first row")
	}

	// Let it write for over a second, seen through a reader as the daemon
	// would be seen by `orproxy usage`.
	r, err := OpenReader(path)
	require.NoError(t, err)
	var first, last int64
	eventually(t, func() bool {
		require.NoError(t, r.db.QueryRow("SELECT min(ts_ms), max(ts_ms) FROM requests").Scan(&first, &last))
		return last-first > 1200
	}, "the helper to write for over a second")
	seen := last
	eventually(t, func() bool {
		require.NoError(t, r.db.QueryRow("SELECT max(ts_ms) FROM requests").Scan(&last))
		return last != seen
	}, "the helper to write its next batch")
	require.NoError(t, r.Close())
	time.Sleep(after) // choosing when to kill, not waiting for readiness

	killAt := time.Now()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true

	db := rawDB(t, path)
	var check string
	require.NoError(t, db.QueryRow("PRAGMA integrity_check").Scan(&check))
	assert.Equal(t, "ok", check)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*), max(ts_ms) FROM requests").Scan(&n, &last))
	lost := killAt.Sub(time.UnixMilli(last))
	t.Logf("%d rows; the last written %v before the kill", n, lost)
	assert.Less(t, lost, 1500*time.Millisecond, "rows of more than the last second were lost")
	require.NoError(t, db.Close())

	// And the daemon starts again on it.
	w, err := Open(path, Options{})
	require.NoError(t, err)
	w.Add(sampleRow(time.Now()))
	require.NoError(t, w.Close(context.Background()))
	assert.Equal(t, n+1, countRows(t, path))
}
