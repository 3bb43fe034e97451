//go:build unix

package node

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system time (steadier than wall time on
// a shared machine); 0 where unknown.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
