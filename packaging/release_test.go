package packaging

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/orproxy/orproxy/internal/version"
)

// These tests read .goreleaser.yaml without goreleaser, which `make test`
// does not install; `make release-check` runs goreleaser's own check.

const repoRoot = ".."

type nfpmContent struct {
	Src      string `yaml:"src"`
	Dst      string `yaml:"dst"`
	Type     string `yaml:"type"`
	Packager string `yaml:"packager"`
}

type releaseConfig struct {
	Version     int    `yaml:"version"`
	ProjectName string `yaml:"project_name"`
	Builds      []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
		Ignore  []any    `yaml:"ignore"`
		Ldflags []string `yaml:"ldflags"`
	} `yaml:"builds"`
	Archives []struct {
		IDs   []string      `yaml:"ids"`
		Files []archiveFile `yaml:"files"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
		Algorithm    string `yaml:"algorithm"`
		Disable      bool   `yaml:"disable"`
	} `yaml:"checksum"`
	Nfpms []struct {
		IDs         []string       `yaml:"ids"`
		PackageName string         `yaml:"package_name"`
		Formats     []string       `yaml:"formats"`
		Bindir      string         `yaml:"bindir"`
		License     string         `yaml:"license"`
		Contents    []nfpmContent  `yaml:"contents"`
		Scripts     map[string]any `yaml:"scripts"`
		Deb         map[string]any `yaml:"deb"`
		RPM         map[string]any `yaml:"rpm"`
	} `yaml:"nfpms"`
	Snapshot struct {
		VersionTemplate string `yaml:"version_template"`
	} `yaml:"snapshot"`
}

// archiveFile is an archive's file entry: a glob, or a map with src.
type archiveFile struct{ Src string }

func (f *archiveFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&f.Src)
	}
	var m struct {
		Src string `yaml:"src"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	f.Src = m.Src
	return nil
}

func loadConfig(t *testing.T) releaseConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".goreleaser.yaml"))
	require.NoError(t, err)
	var cfg releaseConfig
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	return cfg
}

func TestGoreleaserBuildsEveryTarget(t *testing.T) {
	cfg := loadConfig(t)
	assert.Equal(t, 2, cfg.Version, "goreleaser v2's config version")
	assert.Equal(t, "orproxy", cfg.ProjectName)
	require.Len(t, cfg.Builds, 1)
	b := cfg.Builds[0]
	assert.Equal(t, "./cmd/orproxy", b.Main)
	assert.Equal(t, "orproxy", b.Binary)
	assert.ElementsMatch(t, []string{"linux", "darwin", "windows"}, b.Goos)
	assert.ElementsMatch(t, []string{"amd64", "arm64"}, b.Goarch)
	assert.Empty(t, b.Ignore, "every os/arch pair is built")
	assert.Contains(t, b.Env, "CGO_ENABLED=0", "cross-compiled from one machine")
	assert.NotEmpty(t, cfg.Snapshot.VersionTemplate, "a snapshot needs no tag")
}

// stampedVars are the variables the release sets with -X and the template
// each is set from. The linker ignores -X for a variable that does not
// exist, or is not a string; naming them here as *string keeps both true.
var (
	stampedVars = map[string]string{
		"Version": "{{ .Version }}",
		"Commit":  "{{ .FullCommit }}",
		"Date":    "{{ .CommitDate }}",
	}
	_ = []*string{&version.Version, &version.Commit, &version.Date}
)

func TestGoreleaserStampsVersionCommitAndDate(t *testing.T) {
	cfg := loadConfig(t)
	require.Len(t, cfg.Builds, 1)
	// The package path as the linker knows it, from a function of the
	// package, so that moving the package fails here and not in a release
	// whose binaries silently say "dev".
	fn := runtime.FuncForPC(reflect.ValueOf(version.String).Pointer()).Name()
	pkg := strings.TrimSuffix(fn, ".String")
	require.NotEqual(t, fn, pkg)

	stamped := map[string]string{}
	// One -X per entry: its value is a template that may hold spaces.
	for _, flags := range cfg.Builds[0].Ldflags {
		if x, ok := strings.CutPrefix(flags, "-X "); ok {
			name, value, _ := strings.Cut(x, "=")
			stamped[name] = value
		} else {
			assert.NotContains(t, flags, "-X", "an -X that is not its own entry")
		}
	}
	for name, want := range stampedVars {
		value, ok := stamped[pkg+"."+name]
		if assert.True(t, ok, "-X %s.%s in %v", pkg, name, stamped) {
			assert.Contains(t, value, want, name)
		}
	}
	assert.Len(t, stamped, len(stampedVars), "every -X names a variable that exists: %v", stamped)
}

func TestGoreleaserArchivesCarryTheDocuments(t *testing.T) {
	cfg := loadConfig(t)
	require.Len(t, cfg.Archives, 1)
	a := cfg.Archives[0]
	assert.Equal(t, []string{cfg.Builds[0].ID}, a.IDs)
	var files []string
	for _, f := range a.Files {
		files = append(files, f.Src)
		assert.FileExists(t, filepath.Join(repoRoot, f.Src), "archives.files")
	}
	assert.Subset(t, files, []string{"README.md", "LICENSE"})
}

func TestGoreleaserWritesSHA256Checksums(t *testing.T) {
	cfg := loadConfig(t)
	assert.False(t, cfg.Checksum.Disable)
	assert.Equal(t, "checksums.txt", cfg.Checksum.NameTemplate, "the Homebrew formula's filler reads it")
	assert.Equal(t, "sha256", cfg.Checksum.Algorithm, "Homebrew verifies SHA-256")
}

func TestGoreleaserPackagesInstallTheBinaryOnly(t *testing.T) {
	cfg := loadConfig(t)
	require.Len(t, cfg.Nfpms, 1)
	p := cfg.Nfpms[0]
	assert.Equal(t, []string{cfg.Builds[0].ID}, p.IDs)
	assert.Equal(t, "orproxy", p.PackageName)
	assert.ElementsMatch(t, []string{"deb", "rpm"}, p.Formats)
	assert.Equal(t, "/usr/bin", p.Bindir, "the binary lands at /usr/bin/orproxy")
	assert.Equal(t, "Apache-2.0", p.License)
	// orproxy is a per-user daemon that each user installs as a service
	// with `orproxy service install`: a package must not start one.
	assert.Empty(t, p.Scripts, "maintainer scripts")
	assert.Empty(t, p.Deb["scripts"], "deb scripts")
	assert.Empty(t, p.RPM["scripts"], "rpm scripts")
	docs := map[string]bool{}
	for _, c := range p.Contents {
		assert.FileExists(t, filepath.Join(repoRoot, c.Src), "nfpms.contents")
		assert.True(t, strings.HasPrefix(c.Dst, "/usr/share/doc/orproxy/"), "%s: documents only, no unit files or config", c.Dst)
		assert.Empty(t, c.Type, c.Dst)
		docs[c.Src+" "+c.Packager] = true
	}
	for _, want := range []string{"README.md ", "LICENSE deb", "LICENSE rpm"} {
		assert.True(t, docs[want], "%s in the packages: %v", want, docs)
	}
}
