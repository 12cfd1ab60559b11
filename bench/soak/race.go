//go:build race

package soak

// raceEnabled: built with -race, whose shadow memory grows the RSS as the
// run touches more addresses, whether or not anything leaks.
const raceEnabled = true
