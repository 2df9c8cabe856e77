package stat

import "testing"

// The kernels on one cached row of the CNN's first BatchNorm2d (28·28);
// SetBytes counts the float32 read and written.
func BenchmarkKernels(b *testing.B) {
	const n = 28 * 28
	x, dy, y := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], dy[i] = float32(i%17)*0.1, float32(i%5)*0.2
	}
	var sink float64
	for _, l := range levels() {
		run := func(what string, bytes int, f func()) {
			b.Run(what+"/"+l.name, func(b *testing.B) {
				defer use(l)()
				b.SetBytes(int64(bytes))
				for i := 0; i < b.N; i++ {
					f()
				}
			})
		}
		run("Sum", 4*n, func() { sink += Sum(x) })
		run("SqDev", 4*n, func() { sink += SqDev(x, 0.5) })
		run("GradSums", 8*n, func() { a, c := GradSums(x, dy, 0.5); sink += a + c })
		run("Affine", 8*n, func() { Affine(x, y, 0.5, 1.5, 0.1) })
		run("GradApply", 12*n, func() { GradApply(x, dy, y, 0.5, 1.1, 0.2, 0.3) })
	}
	_ = sink
}
