//go:build !race

// Package race reports whether the race detector is compiled in. Tests
// that count Go heap allocations (testing.AllocsPerRun) skip that count
// under -race: the detector's instrumentation allocates on its own, so
// the counts say nothing there. The runs without -race (CI's) check them.
package race

// Enabled is true in a -race build.
const Enabled = false
