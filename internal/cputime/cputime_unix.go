//go:build unix

// Package cputime reads the process's CPU time, the steadier figure next to
// wall time for benchmarks on a shared machine.
package cputime

import (
	"syscall"
	"time"
)

// Now is the process's user plus system time so far; 0 where unknown.
func Now() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
