package service

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orproxy/orproxy/proxy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// awkward has every character that needs escaping somewhere: spaces, quotes,
// '%', '$', '\', '&', '<' and non-ASCII, in paths and in environment values.
func awkward(system bool) Definition {
	return Definition{
		System:     system,
		Executable: `/opt/or proxy/bïn 50% $HOME; *?/orproxy`,
		ConfigFile: `/home/jürgen/.config/or proxy/con fig %h $USER.yaml`,
		Env: []EnvVar{
			{"HTTPS_PROXY", `http://us er:p%40ss$word@proxy.example:3128`},
			{"NO_PROXY", `localhost,127.0.0.1,.intra "ä"`},
			{"SSL_CERT_FILE", `C:\certs\<ca> & co.pem`},
		},
		Label:  launchdLabel,
		LogDir: `/Users/jürgen/Library/Logs/orproxy`,
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./service/ -run Golden -update to create it")
	assert.Equal(t, string(want), got, "differs from %s (rerun with -update if the change is intended)", path)
}

func TestGoldenSystemdUnit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		system bool
	}{{"user.service", false}, {"system.service", true}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderSystemdUnit(awkward(tc.system))
			require.NoError(t, err)
			golden(t, tc.name, got)
		})
	}
}

func TestGoldenLaunchdPlist(t *testing.T) {
	for _, tc := range []struct {
		name   string
		system bool
	}{{"user.plist", false}, {"system.plist", true}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderLaunchdPlist(awkward(tc.system))
			require.NoError(t, err)
			golden(t, tc.name, got)
		})
	}
}

func TestSystemdUnitEssentials(t *testing.T) {
	user, err := RenderSystemdUnit(awkward(false))
	require.NoError(t, err)
	system, err := RenderSystemdUnit(awkward(true))
	require.NoError(t, err)

	assert.Contains(t, user, "\nWantedBy=default.target\n")
	assert.NotContains(t, user, "multi-user.target")
	assert.Contains(t, system, "\nWantedBy=multi-user.target\n")
	for _, unit := range []string{user, system} {
		assert.Contains(t, unit, "\nRestart=on-failure\n")
		assert.Contains(t, unit, "\nRestartSec=2\n")
		assert.NotContains(t, unit, "StandardOutput")
		serviceSection := unit[strings.Index(unit, "[Service]"):strings.Index(unit, "[Install]")]
		assert.Contains(t, serviceSection, "\nNoNewPrivileges=yes\n")
		assert.Contains(t, serviceSection, "\nUMask=0077\n", "files the proxy creates are its user's alone")
		// These need mount namespaces, which a user manager without user
		// namespaces cannot set up: the unit would fail to start.
		for _, key := range []string{"PrivateTmp=", "ProtectSystem=", "ProtectHome=", "PrivateDevices="} {
			assert.NotContains(t, unit, key)
		}
		unitSection := unit[:strings.Index(unit, "[Service]")]
		assert.Contains(t, unitSection, "StartLimitIntervalSec=")
		assert.Contains(t, unitSection, "StartLimitBurst=")
		assert.Contains(t, unit,
			`ExecStart="/opt/or proxy/bïn 50%% $HOME; *?/orproxy" "serve" "--config" "/home/jürgen/.config/or proxy/con fig %%h $$USER.yaml"`+"\n")
		// No '$' doubling outside ExecStart: Environment= does not expand variables.
		assert.Contains(t, unit, `Environment="HTTPS_PROXY=http://us er:p%%40ss$word@proxy.example:3128"`+"\n")
		assert.Contains(t, unit, `Environment="SSL_CERT_FILE=C:\\certs\\<ca> & co.pem"`+"\n")
	}
}

func TestRenderRejectsUnsafeValues(t *testing.T) {
	for name, mutate := range map[string]func(*Definition){
		"template in executable": func(d *Definition) { d.Executable = "/opt/{{Path}}/orproxy" },
		"template in config":     func(d *Definition) { d.ConfigFile = "/x/{{.}}.yaml" },
		"template in env value":  func(d *Definition) { d.Env = []EnvVar{{"HTTPS_PROXY", "http://{{x}}"}} },
		"relative executable":    func(d *Definition) { d.Executable = "bin/orproxy" },
		"relative config":        func(d *Definition) { d.ConfigFile = "config.yaml" },
		"newline in config":      func(d *Definition) { d.ConfigFile = "/x/a\nExecStartPre=/bin/rm" },
		"newline in env value":   func(d *Definition) { d.Env = []EnvVar{{"NO_PROXY", "a\nb"}} },
		"bad env name":           func(d *Definition) { d.Env = []EnvVar{{"NO PROXY", "x"}} },
		"invalid utf-8":          func(d *Definition) { d.ConfigFile = "/x/\xff.yaml" },
	} {
		t.Run(name, func(t *testing.T) {
			d := awkward(false)
			mutate(&d)
			_, err := RenderSystemdUnit(d)
			assert.Error(t, err, "systemd")
			_, err = RenderLaunchdPlist(d)
			assert.Error(t, err, "launchd")
		})
	}
	for _, exe := range []string{`/opt/a"b/orproxy`, `/opt/a\b/orproxy`, `/opt/it's/orproxy`} {
		d := awkward(false)
		d.Executable = exe
		_, err := RenderSystemdUnit(d)
		assert.ErrorContains(t, err, "move orproxy to a plain path", exe)
		_, err = RenderLaunchdPlist(d)
		assert.NoError(t, err, "launchd takes any path: %s", exe)
	}
	d := awkward(false)
	d.Label = "../evil"
	_, err := RenderLaunchdPlist(d)
	assert.Error(t, err)
}

// TestSystemdAnalyzeVerify runs systemd's own parser over the rendered unit.
// systemd-analyze exits 0 on warnings (bad quoting, unresolved specifiers,
// unknown keys), so any output on stderr is a failure.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; the rendered unit is only golden-tested")
	}
	for _, system := range []bool{false, true} {
		name := map[bool]string{false: "user", true: "system"}[system]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// The executable must exist under its awkward name: verify checks it.
			exeDir := filepath.Join(dir, `or proxy 50% $HOME; *? ü`)
			require.NoError(t, os.MkdirAll(exeDir, 0o755))
			exe := filepath.Join(exeDir, "orproxy")
			copyExecutable(t, "/bin/true", exe)

			d := awkward(system)
			d.Executable = exe
			unit, err := RenderSystemdUnit(d)
			require.NoError(t, err)
			// verify warns about a value it cannot parse, so these lines
			// are checked by systemd itself, not only by the golden file.
			require.Contains(t, unit, "\nNoNewPrivileges=yes\n")
			require.Contains(t, unit, "\nUMask=0077\n")
			unitPath := filepath.Join(dir, "orproxy.service")
			require.NoError(t, os.WriteFile(unitPath, []byte(unit), 0o644))

			runtime := filepath.Join(dir, "run")
			require.NoError(t, os.Mkdir(runtime, 0o700))
			args := []string{"verify"}
			if !system {
				args = append(args, "--user")
			}
			args = append(args, unitPath)
			cmd := exec.Command(analyze, args...)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "SYSTEMD_LOG_COLOR=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdout = &stderr
			err = cmd.Run()
			assert.NoError(t, err, "systemd-analyze %v", args)
			assert.Empty(t, stderr.String(), "systemd-analyze %v complained about:\n%s", args, unit)
		})
	}
}

func TestSystemdAnalyzeCatchesAMissingExecutable(t *testing.T) {
	// Guards the test above: verify must really look at ExecStart, or a
	// quoting mistake in the path would pass unnoticed.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	d := awkward(false)
	d.Executable = filepath.Join(dir, "no such", "orproxy")
	unit, err := RenderSystemdUnit(d)
	require.NoError(t, err)
	unitPath := filepath.Join(dir, "orproxy.service")
	require.NoError(t, os.WriteFile(unitPath, []byte(unit), 0o644))
	runtime := filepath.Join(dir, "run")
	require.NoError(t, os.Mkdir(runtime, 0o700))
	cmd := exec.Command(analyze, "verify", "--user", unitPath)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime)
	out, _ := cmd.CombinedOutput()
	assert.Contains(t, string(out), "is not executable", "%s", out)
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

func TestPlistParsesWithPlistlib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed; the plist is checked by the Go walk only")
	}
	for _, system := range []bool{false, true} {
		plist, err := RenderLaunchdPlist(awkward(system))
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "p.plist")
		require.NoError(t, os.WriteFile(path, []byte(plist), 0o644))
		// Print the parsed arguments and environment back, to check the
		// escaping round-trips and not only that the XML is well formed.
		out, err := exec.Command(python, "-c", `import plistlib,sys,json
p = plistlib.load(open(sys.argv[1], "rb"))
print(json.dumps([p["ProgramArguments"], p.get("EnvironmentVariables"), p["Label"], p["RunAtLoad"], p["KeepAlive"]], ensure_ascii=False))`, path).CombinedOutput()
		require.NoError(t, err, "%s", out)
		d := awkward(system)
		want := `[["/opt/or proxy/bïn 50% $HOME; *?/orproxy", "serve", "--config", "/home/jürgen/.config/or proxy/con fig %h $USER.yaml"], ` +
			`{"HTTPS_PROXY": "http://us er:p%40ss$word@proxy.example:3128", "NO_PROXY": "localhost,127.0.0.1,.intra \"ä\"", "SSL_CERT_FILE": "C:\\certs\\<ca> & co.pem"}, ` +
			`"` + d.Label + `", true, {"SuccessfulExit": false}]`
		assert.Equal(t, want, strings.TrimSpace(string(out)))
	}
}

// TestPlistStructure walks the plist with encoding/xml: inside every <dict>,
// keys and values must alternate, and the keys launchd needs must be there.
func TestPlistStructure(t *testing.T) {
	plist, err := RenderLaunchdPlist(awkward(false))
	require.NoError(t, err)
	keys := walkPlist(t, plist)
	for _, k := range []string{"Label", "ProgramArguments", "EnvironmentVariables", "RunAtLoad", "KeepAlive", "StandardOutPath", "StandardErrorPath"} {
		assert.Contains(t, keys, k)
	}
	assert.Equal(t, launchdLabel, keys["Label"])
	assert.Equal(t, "/Users/jürgen/Library/Logs/orproxy/orproxy.log", keys["StandardErrorPath"])

	noEnv := awkward(false)
	noEnv.Env = nil
	plist, err = RenderLaunchdPlist(noEnv)
	require.NoError(t, err)
	assert.NotContains(t, walkPlist(t, plist), "EnvironmentVariables")
}

// TestPlistThrottlesRespawnsAndRunsInteractive: launchd never stops
// respawning a job that keeps failing, so the respawns must be slow enough
// not to hammer the machine and the log; and the proxy must not get the
// CPU and I/O of a background job.
func TestPlistThrottlesRespawnsAndRunsInteractive(t *testing.T) {
	for _, system := range []bool{false, true} {
		plist, err := RenderLaunchdPlist(awkward(system))
		require.NoError(t, err)
		m := regexp.MustCompile(`<key>ThrottleInterval</key>\s*<integer>(\d+)</integer>`).FindStringSubmatch(plist)
		require.NotNil(t, m, "no ThrottleInterval in\n%s", plist)
		secs, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		assert.GreaterOrEqual(t, secs, 10, "ThrottleInterval")
		assert.Equal(t, "Interactive", walkPlist(t, plist)["ProcessType"])
	}
}

// walkPlist checks the structure and returns the top-level keys with the text
// of their value when it is a <string> (or the element name otherwise).
func walkPlist(t *testing.T, plist string) map[string]string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(plist))
	dec.Strict = true
	type frame struct {
		name      string
		expectKey bool // in a dict: the next element must be a <key>
	}
	var stack []frame
	top := map[string]string{}
	var text strings.Builder
	var lastKey string
	depthOfTop := 2 // plist > dict
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		switch el := tok.(type) {
		case xml.StartElement:
			if n := len(stack); n > 0 && stack[n-1].name == "dict" {
				isKey := el.Name.Local == "key"
				require.Equal(t, stack[n-1].expectKey, isKey, "dict entries must alternate key/value, got <%s>", el.Name.Local)
				stack[n-1].expectKey = !isKey
			}
			if len(stack) == 0 {
				require.Equal(t, "plist", el.Name.Local)
			}
			stack = append(stack, frame{name: el.Name.Local, expectKey: true})
			text.Reset()
			if len(stack) == depthOfTop+1 && el.Name.Local != "key" && el.Name.Local != "string" {
				top[lastKey] = el.Name.Local
			}
		case xml.CharData:
			text.Write(el)
		case xml.EndElement:
			n := len(stack)
			if el.Name.Local == "dict" {
				require.True(t, stack[n-1].expectKey, "a <dict> ends with a key that has no value")
			}
			if n == depthOfTop+1 {
				switch el.Name.Local {
				case "key":
					lastKey = text.String()
				case "string":
					top[lastKey] = text.String()
				}
			}
			stack = stack[:n-1]
		}
	}
	require.Empty(t, stack)
	return top
}

// The stop timeouts rendered for the manager are computed from the drain the
// proxy uses when told nothing; a drift would let the manager kill a drain.
func TestDefaultDrainIsTheProxys(t *testing.T) {
	assert.Equal(t, proxy.DefaultDrainTimeout, defaultDrain)
}

// TestStopTimeoutsOutlastTheDrain: the manager must not kill serve while it
// drains open streams, and serve must not give up on its own drain.
func TestStopTimeoutsOutlastTheDrain(t *testing.T) {
	for _, drain := range []time.Duration{0, defaultDrain, 1500 * time.Millisecond, 2 * time.Minute} {
		d := awkward(false)
		d.DrainTimeout = drain
		effective := drain
		if effective == 0 {
			effective = defaultDrain
		}
		assert.Greater(t, stopWait(drain), effective, "serve's wait, drain %s", drain)

		unit, err := RenderSystemdUnit(d)
		require.NoError(t, err)
		m := regexp.MustCompile(`\nTimeoutStopSec=(\d+)\n`).FindStringSubmatch(unit)
		require.NotNil(t, m, "no TimeoutStopSec in\n%s", unit)
		secs, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		assert.Greater(t, time.Duration(secs)*time.Second, stopWait(drain), "TimeoutStopSec, drain %s", drain)

		plist, err := RenderLaunchdPlist(d)
		require.NoError(t, err)
		m = regexp.MustCompile(`<key>ExitTimeOut</key>\s*<integer>(\d+)</integer>`).FindStringSubmatch(plist)
		require.NotNil(t, m, "no ExitTimeOut in\n%s", plist)
		secs, err = strconv.Atoi(m[1])
		require.NoError(t, err)
		assert.Greater(t, time.Duration(secs)*time.Second, stopWait(drain), "ExitTimeOut, drain %s", drain)
	}
	d := awkward(false)
	d.DrainTimeout = -time.Second
	_, err := RenderSystemdUnit(d)
	assert.ErrorContains(t, err, "negative")
}
