//go:build !windows

package service

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// attrReader tells whether a file carries an extended attribute.
type attrReader interface {
	hasAttr(path, name string) (bool, error)
}

// quarantineAttr is what macOS puts on a downloaded file; Gatekeeper then
// checks the file before it first runs, and launchd has no window to ask in.
const quarantineAttr = "com.apple.quarantine"

// cellarPath matches a binary inside Homebrew's versioned directory:
// <prefix>/Cellar/<formula>/<version>/<rest>.
var cellarPath = regexp.MustCompile(`^(.*)/Cellar/([^/]+)/[^/]+/(.+)$`)

// protectedDirs are the home folders macOS keeps a background process from
// reading unless the user grants it Full Disk Access.
var protectedDirs = []string{"Desktop", "Documents", "Downloads"}

// warnings says what in def would keep the installed service from starting
// now or after an upgrade.
func (p launchdPlatform) warnings(def Definition, sc scope) []string {
	var out []string
	if m := cellarPath.FindStringSubmatch(def.Executable); m != nil {
		stable := m[1] + "/opt/" + m[2] + "/" + m[3]
		out = append(out, fmt.Sprintf(
			"The service runs %s, inside Homebrew's versioned Cellar directory, which `brew upgrade` replaces and `brew cleanup` deletes, and the service would then fail to start: run `%s`, then `%s` to run Homebrew's stable link instead.",
			def.Executable, sc.command("uninstall"), strings.Replace(sc.command("install"), "orproxy", quoteArgs([]string{stable})[0], 1)))
	}
	attrs := p.attrs
	if attrs == nil {
		attrs = xattrs{}
	}
	if q, err := attrs.hasAttr(def.Executable, quarantineAttr); err == nil && q {
		out = append(out, fmt.Sprintf(
			"%s carries macOS's quarantine flag (%s, set on downloads), and launchd cannot ask whether to run it, so Gatekeeper may stop it at every start: clear the flag with `xattr -d %s %s`, then run `%s`.",
			def.Executable, quarantineAttr, quarantineAttr, quoteArgs([]string{def.Executable})[0], sc.command("restart")))
	}
	home, _ := homeDir()
	for _, f := range []struct{ what, path, fix string }{
		{"The orproxy binary", def.Executable, "move it to a folder such as /usr/local/bin or ~/.local/bin"},
		{"The config file", def.ConfigFile, "move it elsewhere (`orproxy config path` shows the default place) and pass the new path with --config"},
	} {
		if dir := protectedDir(f.path, home); dir != "" {
			out = append(out, fmt.Sprintf(
				"%s %s is in %s, which macOS does not let a background service read: %s, then run `%s` and `%s` again.",
				f.what, f.path, dir, f.fix, sc.command("uninstall"), sc.command("install")))
		}
	}
	return out
}

// protectedDir returns the protected folder path lies in ("~/Documents", or
// "/Users/<name>/Documents" for another user's home), or "".
func protectedDir(path, home string) string {
	path = filepath.Clean(path)
	for _, d := range protectedDirs {
		if home != "" && strings.HasPrefix(path, filepath.Join(home, d)+"/") {
			return "~/" + d
		}
	}
	parts := strings.Split(path, "/")
	if len(parts) > 4 && parts[0] == "" && parts[1] == "Users" {
		for _, d := range protectedDirs {
			if parts[3] == d {
				return strings.Join(parts[:4], "/")
			}
		}
	}
	return ""
}
