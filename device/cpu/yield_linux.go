package cpu

import "syscall"

// osYield gives the core to another thread that is ready to run on it,
// if any (sched_yield): a polling goroutine calls it between polls past
// the first microseconds, so that on a machine busy with other work it
// costs that work little of its core.
func osYield() { syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
