// Package device defines the Device interface that every compute backend
// implements, the buffers and dtypes it works on, the typed errors it
// returns, and the registry through which backends make themselves known.
//
// A Device owns memory and runs kernels. It sees flat buffers and the
// dimensions passed to each primitive; shapes live one level up, in nn.
// Launches may be asynchronous (the CUDA backend queues them on a stream):
// results are only guaranteed to be visible on the host after a copy to the
// host or Sync. Scalar results (a loss, a norm) are written to one-element
// device buffers, so that a training step never has to wait for the device
// unless the caller chooses to read them.
//
// Backends register themselves in an init function, as database/sql drivers
// do; programs pick one with Open("auto" | "cpu" | "cuda" | "cuda:N").
// Packages above this one (nn, train, data) depend only on this package,
// never on a backend.
package device
