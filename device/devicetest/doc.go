// Package devicetest is the conformance suite every backend must pass:
// devicetest.Run checks each primitive of device.Device against float64
// references computed here.
//
// A backend's own test calls it with an open device:
//
//	func TestConformance(t *testing.T) {
//		dev, err := device.Open("cpu")
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer dev.Close()
//		devicetest.Run(t, dev)
//	}
//
// Every primitive runs as its own subtest (Gemm/513x257x129/TN/a0.5b1.5,
// Errors/Gemm/c/freed, Loss/bce/7x13/extreme, …), so a failure names the
// primitive, the shape and the case; -run selects them as usual. Inputs are random but seeded from the subtest's name, so a
// failure reproduces exactly. Output buffers are poisoned (NaN or a finite
// sentinel) before each call that must overwrite them, so unwritten elements
// show. Each tolerance is stated next to its check with its reason; most
// are rigorous float32 rounding-error bounds (multiples of the unit
// roundoff u = 2⁻²⁴ times the magnitude of the terms involved), so they hold
// for any summation order a backend chooses.
//
// The suite never depends on a backend: it receives the device. With
// `go test -short` the largest cases (a 1024×768×512 GEMM, 2²⁰-element
// vectors) are skipped.
package devicetest
