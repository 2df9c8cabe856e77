//go:build !unix

package gemm

import "time"

// ProcessCPUTime is the user+system CPU time the process has used, for
// benchmarks on shared machines (0 where the OS does not say).
func ProcessCPUTime() time.Duration { return 0 }
