// Package packaging holds what a release is built from besides the code:
// the Homebrew formula template and its filler (packaging/homebrew), and
// the tests that keep .goreleaser.yaml's promises without running
// goreleaser. README.md in this directory describes a release.
package packaging
