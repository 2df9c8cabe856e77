//go:build unix

package gemm

import (
	"syscall"
	"time"
)

// ProcessCPUTime is the user+system CPU time the process has used, for
// benchmarks on shared machines (0 where the OS does not say).
func ProcessCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
