package service

import "os"

// rotateServiceLog: the Windows service manager keeps no log file of
// orproxy's output.
func rotateServiceLog(_, _ *os.File) {}
