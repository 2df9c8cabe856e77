//go:build !linux

package cpu

// osYield does nothing off Linux: yield's runtime.Gosched already lets
// other goroutines run, and there is no portable sched_yield to add.
func osYield() {}
