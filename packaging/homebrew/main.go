// Command homebrew writes orproxy's Homebrew formula for a release built by
// goreleaser: it fills orproxy.rb.tmpl with the version, the archives'
// names and their SHA-256 sums from the dist directory.
//
//	go run ./packaging/homebrew -dist dist    # writes dist/homebrew/orproxy.rb
//
// It reads only local files: metadata.json and artifacts.json (goreleaser's
// record of the run) and checksums.txt (the sums published with the release).
//
// goreleaser's own formula generator (brews) is deprecated in goreleaser v2
// in favour of casks, which suit apps rather than a command-line daemon.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

//go:embed orproxy.rb.tmpl
var formulaTemplate string

// downloadBase is where a release's files are published; the tag follows.
const downloadBase = "https://github.com/orproxy/orproxy/releases/download/"

// Formula is what the template is filled with; archive (a template
// function) gives one platform's archive.
type Formula struct {
	Version     string // 0.1.0, as Homebrew compares versions
	Tag         string // v0.1.0
	DownloadURL string // the release's download folder, without a trailing slash
	archives    map[string]Archive
}

// Archive is one platform's release archive.
type Archive struct {
	Name   string
	SHA256 string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "homebrew: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("homebrew", flag.ContinueOnError)
	dist := fs.String("dist", "dist", "goreleaser's output directory")
	out := fs.String("out", "", "the formula to write (default: DIST/homebrew/orproxy.rb)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(*dist, "homebrew", "orproxy.rb")
	}
	f, err := load(*dist)
	if err != nil {
		return err
	}
	text, err := render(formulaTemplate, f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("writing the formula: %w", err)
	}
	if err := os.WriteFile(*out, text, 0o644); err != nil {
		return fmt.Errorf("writing the formula: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s for %s\n", *out, f.Tag)
	return nil
}

// load reads a goreleaser dist directory: the version and tag, each
// archive's platform, and the published sums.
func load(dist string) (Formula, error) {
	var meta struct {
		Version string `json:"version"`
		Tag     string `json:"tag"`
	}
	if err := readJSON(filepath.Join(dist, "metadata.json"), &meta); err != nil {
		return Formula{}, err
	}
	if meta.Version == "" || meta.Tag == "" {
		return Formula{}, fmt.Errorf("%s names no version or tag", filepath.Join(dist, "metadata.json"))
	}
	var artifacts []struct {
		Name   string `json:"name"`
		Goos   string `json:"goos"`
		Goarch string `json:"goarch"`
		Type   string `json:"type"`
	}
	if err := readJSON(filepath.Join(dist, "artifacts.json"), &artifacts); err != nil {
		return Formula{}, err
	}
	sums, err := readChecksums(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		return Formula{}, err
	}
	f := Formula{
		Version:     meta.Version,
		Tag:         meta.Tag,
		DownloadURL: downloadBase + meta.Tag,
		archives:    map[string]Archive{},
	}
	for _, a := range artifacts {
		if a.Type != "Archive" {
			continue
		}
		sum, ok := sums[a.Name]
		if !ok {
			return Formula{}, fmt.Errorf("%s is not in %s", a.Name, filepath.Join(dist, "checksums.txt"))
		}
		f.archives[platform(a.Goos, a.Goarch)] = Archive{Name: a.Name, SHA256: sum}
	}
	return f, nil
}

func platform(goos, goarch string) string { return goos + "_" + goarch }

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading goreleaser's record: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// readChecksums reads sha256sum's format: "<hex>  <name>" per line.
func readChecksums(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the checksums: %w", err)
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("%s:%d: not a SHA-256 sum and a file name", path, n)
		}
		sums[strings.TrimPrefix(name, "*")] = sum
	}
	return sums, sc.Err()
}

// render fills the template. Every field and every archive it asks for
// must exist: a formula with an empty url or sha256 must not be written.
func render(tmpl string, f Formula) ([]byte, error) {
	t, err := template.New("formula").Option("missingkey=error").Funcs(template.FuncMap{
		"archive": func(goos, goarch string) (Archive, error) {
			a, ok := f.archives[platform(goos, goarch)]
			if !ok {
				return Archive{}, fmt.Errorf("the release has no archive for %s/%s", goos, goarch)
			}
			return a, nil
		},
	}).Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("the formula template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, f); err != nil {
		return nil, fmt.Errorf("filling the formula: %w", err)
	}
	return buf.Bytes(), nil
}
