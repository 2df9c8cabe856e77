//go:build !amd64 || purego

package simd

// HasAdam is false where there is no assembly kernel.
var HasAdam = false

// Adam does nothing where HasAdam is false; callers check HasAdam first.
func Adam(pp, gp, mp, vp *float32, n int, c *[8]float32, wd bool) {}
