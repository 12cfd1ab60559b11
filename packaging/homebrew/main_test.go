package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// formulaPlatforms are the platforms the formula installs on: Homebrew runs
// on macOS and Linux, on Intel and ARM.
var formulaPlatforms = [][2]string{{"darwin", "amd64"}, {"darwin", "arm64"}, {"linux", "amd64"}, {"linux", "arm64"}}

// sumOf is a made-up sum, different for each file.
func sumOf(name string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(name)))
}

// writeDist lays out what goreleaser leaves in dist/ for a release of the
// given platforms, Windows included as it is in a real one.
func writeDist(t *testing.T, version string, platforms [][2]string) string {
	t.Helper()
	dist := t.TempDir()
	meta := map[string]any{"project_name": "orproxy", "tag": "v" + version, "version": version, "commit": "0123456789abcdef"}
	artifacts := []map[string]string{
		{"name": "checksums.txt", "goos": "", "goarch": "", "type": "Checksum"},
		{"name": "orproxy", "goos": "linux", "goarch": "amd64", "type": "Binary"},
		{"name": "orproxy_" + version + "_amd64.deb", "goos": "linux", "goarch": "amd64", "type": "Linux Package"},
		{"name": "orproxy_" + version + "_windows_amd64.zip", "goos": "windows", "goarch": "amd64", "type": "Archive"},
	}
	var sums strings.Builder
	fmt.Fprintf(&sums, "%s  %s\n", sumOf(artifacts[2]["name"]), artifacts[2]["name"])
	fmt.Fprintf(&sums, "%s  %s\n", sumOf(artifacts[3]["name"]), artifacts[3]["name"])
	for _, p := range platforms {
		name := fmt.Sprintf("orproxy_%s_%s_%s.tar.gz", version, p[0], p[1])
		artifacts = append(artifacts, map[string]string{"name": name, "goos": p[0], "goarch": p[1], "type": "Archive"})
		fmt.Fprintf(&sums, "%s  %s\n", sumOf(name), name)
	}
	for name, v := range map[string]any{"metadata.json": meta, "artifacts.json": artifacts} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dist, name), b, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(sums.String()), 0o644))
	return dist
}

func TestRunWritesTheFormula(t *testing.T) {
	dist := writeDist(t, "1.2.3", formulaPlatforms)
	var stdout bytes.Buffer
	require.NoError(t, run([]string{"-dist", dist}, &stdout))
	out := filepath.Join(dist, "homebrew", "orproxy.rb")
	assert.Equal(t, "wrote "+out+" for v1.2.3\n", stdout.String())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	formula := string(b)

	assert.Contains(t, formula, `version "1.2.3"`)
	assert.NotContains(t, formula, "{{")
	assert.NotContains(t, formula, "<no value>")
	// Each platform's block names its own archive and that archive's sum.
	blocks := map[string]string{
		"darwin_amd64": section(t, formula, "on_macos do", "on_intel do"),
		"darwin_arm64": section(t, formula, "on_macos do", "on_arm do"),
		"linux_amd64":  section(t, formula, "on_linux do", "on_intel do"),
		"linux_arm64":  section(t, formula, "on_linux do", "on_arm do"),
	}
	for plat, block := range blocks {
		name := "orproxy_1.2.3_" + plat + ".tar.gz"
		assert.Equal(t, fmt.Sprintf("url %q\nsha256 %q", downloadBase+"v1.2.3/"+name, sumOf(name)), block, plat)
	}
	assert.NotContains(t, formula, "windows")
}

// section is the body of the inner block inside the outer one, its lines
// trimmed.
func section(t *testing.T, text, outer, inner string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "\n  "+outer+"\n")
	require.True(t, ok, outer)
	_, rest, ok = strings.Cut(rest, "    "+inner+"\n")
	require.True(t, ok, inner)
	body, _, ok := strings.Cut(rest, "\n    end\n")
	require.True(t, ok, inner)
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n")
}

func TestRunRefusesAnIncompleteRelease(t *testing.T) {
	t.Run("a platform without an archive", func(t *testing.T) {
		dist := writeDist(t, "1.2.3", formulaPlatforms[:3])
		err := run([]string{"-dist", dist}, &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the release has no archive for linux/arm64")
		assert.NoFileExists(t, filepath.Join(dist, "homebrew", "orproxy.rb"))
	})
	t.Run("an archive without a sum", func(t *testing.T) {
		dist := writeDist(t, "1.2.3", formulaPlatforms)
		sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
		require.NoError(t, err)
		var kept []string
		for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
			if !strings.HasSuffix(l, "_darwin_arm64.tar.gz") {
				kept = append(kept, l)
			}
		}
		require.NoError(t, os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(strings.Join(kept, "\n")+"\n"), 0o644))
		err = run([]string{"-dist", dist}, &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "orproxy_1.2.3_darwin_arm64.tar.gz is not in")
	})
	t.Run("a damaged checksums file", func(t *testing.T) {
		dist := writeDist(t, "1.2.3", formulaPlatforms)
		require.NoError(t, os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte("abc  orproxy_1.2.3_linux_amd64.tar.gz\n"), 0o644))
		err := run([]string{"-dist", dist}, &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "checksums.txt:1: not a SHA-256 sum")
	})
	t.Run("no goreleaser run", func(t *testing.T) {
		err := run([]string{"-dist", t.TempDir()}, &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "metadata.json")
	})
}

func TestRenderRefusesUnknownFields(t *testing.T) {
	_, err := render(`{{ .Nope }}`, Formula{})
	require.Error(t, err)
	_, err = render(`{{ with archive "plan9" "386" }}{{ .Name }}{{ end }}`, Formula{archives: map[string]Archive{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plan9/386")
}

// goreleaserConfig is the part of .goreleaser.yaml the formula depends on.
type goreleaserConfig struct {
	Builds []struct {
		Goos   []string `yaml:"goos"`
		Goarch []string `yaml:"goarch"`
	} `yaml:"builds"`
	Archives []struct {
		Formats         []string `yaml:"formats"`
		FormatOverrides []struct {
			Goos    string   `yaml:"goos"`
			Formats []string `yaml:"formats"`
		} `yaml:"format_overrides"`
	} `yaml:"archives"`
	Release struct {
		GitHub struct {
			Owner string `yaml:"owner"`
			Name  string `yaml:"name"`
		} `yaml:"github"`
	} `yaml:"release"`
}

// The template asks for exactly the platforms the release builds for
// Homebrew, as tar.gz archives, and downloads them from where the release
// publishes them.
func TestTemplateMatchesTheRelease(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".goreleaser.yaml"))
	require.NoError(t, err)
	var cfg goreleaserConfig
	require.NoError(t, yaml.Unmarshal(b, &cfg))

	var asked []string
	for _, m := range regexp.MustCompile(`archive "(\w+)" "(\w+)"`).FindAllStringSubmatch(formulaTemplate, -1) {
		asked = append(asked, m[1]+"/"+m[2])
	}
	sort.Strings(asked)
	var want []string
	for _, p := range formulaPlatforms {
		want = append(want, p[0]+"/"+p[1])
	}
	assert.Equal(t, want, asked, "platforms the template asks for")

	require.Len(t, cfg.Builds, 1)
	require.Len(t, cfg.Archives, 1)
	for _, p := range formulaPlatforms {
		assert.Contains(t, cfg.Builds[0].Goos, p[0])
		assert.Contains(t, cfg.Builds[0].Goarch, p[1])
		formats := cfg.Archives[0].Formats
		for _, o := range cfg.Archives[0].FormatOverrides {
			if o.Goos == p[0] {
				formats = o.Formats
			}
		}
		assert.Equal(t, []string{"tar.gz"}, formats, "the %s archive Homebrew downloads", p[0])
	}

	gh := cfg.Release.GitHub
	assert.Equal(t, "https://github.com/"+gh.Owner+"/"+gh.Name+"/releases/download/", downloadBase)
}
