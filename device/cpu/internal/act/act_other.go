//go:build !amd64 || purego

package act

// useAVX2 is false where there is no assembly kernel: the scalar
// functions of act.go run.
var useAVX2 = false

// fwdVec and actGradVec are never called where useAVX2 is false.
func fwdVec(k Kind, x, y []float32)                     { panic("act: no vector kernel") }
func gradVec(k Kind, x, dy, dx []float32)               { panic("act: no vector kernel") }
func expScaledVec(x, y []float32, scale, shift float32) { panic("act: no vector kernel") }
func eluVec(x, y []float32, alpha float32)              { panic("act: no vector kernel") }
func eluGradVec(x, dy, dx []float32, alpha float32)     { panic("act: no vector kernel") }
