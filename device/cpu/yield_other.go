//go:build !linux

package cpu

import "runtime"

// osYield lets other goroutines run (the portable stand-in for
// sched_yield, see yield_linux.go).
func osYield() { runtime.Gosched() }
