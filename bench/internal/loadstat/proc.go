package loadstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat. Linux
// reports them in USER_HZ, which is 100 on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// StatFields are the figures read from one /proc/<pid>/stat line.
type StatFields struct {
	PPID  int
	UTime time.Duration
	STime time.Duration
}

// ParseStat parses the contents of /proc/<pid>/stat. The command name is in
// parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func ParseStat(b []byte) (StatFields, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return StatFields{}, errors.New("stat: no ')' after the command name")
	}
	// After ')' come field 3 (state), 4 (ppid), … 14 (utime), 15 (stime).
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return StatFields{}, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return StatFields{}, fmt.Errorf("stat: %w", err)
	}
	return StatFields{PPID: ppid, UTime: time.Duration(ut) * clockTick, STime: time.Duration(st) * clockTick}, nil
}

// ParseKiB finds "Name:   1234 kB" in the contents of /proc/<pid>/status or
// /proc/<pid>/smaps_rollup and returns the number of KiB.
func ParseKiB(b []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != name {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected value %q", name, rest)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: not found", name)
}

// Proc reads the /proc figures of a process and, optionally, of its direct
// children (nginx's workers). Root is "/proc" outside tests.
type Proc struct {
	Root     string
	PID      int
	Children bool
}

// Usage is what a process (tree) had used at one moment.
type Usage struct {
	CPU    time.Duration // user + system time
	RSSKiB int64         // VmRSS, summed over the processes
	PSSKiB int64         // Pss from smaps_rollup, summed; shared pages split
	Procs  int
}

// pids returns the process and, with Children, every process whose parent it is.
func (p Proc) pids() ([]int, error) {
	pids := []int{p.PID}
	if !p.Children {
		return pids, nil
	}
	entries, err := os.ReadDir(p.Root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == p.PID {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.Root, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if st, err := ParseStat(b); err == nil && st.PPID == p.PID {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Read sums the usage of the process tree now.
func (p Proc) Read() (Usage, error) {
	pids, err := p.pids()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, pid := range pids {
		dir := filepath.Join(p.Root, strconv.Itoa(pid))
		b, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			return Usage{}, err
		}
		st, err := ParseStat(b)
		if err != nil {
			return Usage{}, err
		}
		u.CPU += st.UTime + st.STime
		if b, err = os.ReadFile(filepath.Join(dir, "status")); err != nil {
			return Usage{}, err
		}
		rss, err := ParseKiB(b, "VmRSS")
		if err != nil {
			return Usage{}, err
		}
		u.RSSKiB += rss
		// smaps_rollup needs Linux 4.14; PSS stays 0 without it.
		if b, err = os.ReadFile(filepath.Join(dir, "smaps_rollup")); err == nil {
			if pss, err := ParseKiB(b, "Pss"); err == nil {
				u.PSSKiB += pss
			}
		}
		u.Procs++
	}
	return u, nil
}
