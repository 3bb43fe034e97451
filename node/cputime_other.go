//go:build !unix

package node

import "time"

// cpuTime is not measured here: bench reports CPU times of 0.
func cpuTime() time.Duration { return 0 }
