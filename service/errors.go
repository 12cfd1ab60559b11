package service

import "errors"

// Kinds of failure. Every error the package returns is an *Error whose Kind is
// one of these, so callers can branch with errors.Is; its message is already
// the one line the user should read.
var (
	ErrUnsupported      = errors.New("no supported service manager")
	ErrNoServiceManager = errors.New("service manager not reachable")
	ErrPermission       = errors.New("permission needed")
	ErrAlreadyInstalled = errors.New("service already installed")
	ErrNotInstalled     = errors.New("service not installed")
	ErrAlreadyRunning   = errors.New("service already running")
	ErrNotRunning       = errors.New("service not running")
	ErrPortInUse        = errors.New("listen address in use")
	ErrNotHealthy       = errors.New("proxy not answering")
	ErrBadConfig        = errors.New("bad configuration")
	ErrInvalid          = errors.New("invalid service setup")
	ErrManager          = errors.New("service manager failed")
)

// Error is a failure with a message written for the user: what went wrong,
// including the service manager's own words, and what to do about it.
type Error struct {
	// Kind is one of the Err* values above.
	Kind error
	// Msg is the complete message.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match both the Kind and the underlying cause (for
// example fs.ErrPermission).
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func newError(kind error, err error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: err}
}
