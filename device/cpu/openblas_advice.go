package cpu

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// blasCore is the core OpenBLAS picked at load time (openblas_get_corename)
// in an openblas build, "" in the default build; blasConfig is its
// openblas_get_config line. openblas.go sets both.
var blasCore, blasConfig string

// BLASAdvice returns a one-line hint when this build's GEMM runs kernels
// well below what the CPU can do, or "" when it does not. Today that is an
// openblas build on a CPU newer than its OpenBLAS: a DYNAMIC_ARCH OpenBLAS
// that does not recognise the CPU model falls back to an old generic core
// (OpenBLAS 0.3.21 runs its SSE3 "Prescott" kernels on some AVX-512 Xeons,
// a quarter of the speed of its SkylakeX kernels there). The hint names the
// OPENBLAS_CORETYPE value that selects the kernels the CPU supports; the
// variable is read when the library loads, so it has to be in the
// environment the program starts with. When OPENBLAS_CORETYPE is set the
// choice is the user's and there is no hint. The default build picks its
// GEMM micro-kernel from the CPU's features itself and never needs one.
func BLASAdvice() string {
	if !strings.Contains(blasConfig, "DYNAMIC_ARCH") {
		return "" // built for one core: OPENBLAS_CORETYPE would change nothing
	}
	_, envSet := os.LookupEnv("OPENBLAS_CORETYPE")
	return coreAdvice(blasCore, envSet, cpuSIMD())
}

// simdLevel is the widest vector ISA an OpenBLAS core's kernels use.
type simdLevel int

const (
	simdOld    simdLevel = iota // below AVX2+FMA
	simdAVX2                    // AVX2 and FMA: OpenBLAS's Haswell kernels
	simdAVX512                  // AVX-512 F, CD, BW, DQ, VL: its SkylakeX kernels
)

func (l simdLevel) String() string {
	switch l {
	case simdAVX512:
		return "AVX-512"
	case simdAVX2:
		return "AVX2+FMA"
	}
	return "no AVX2"
}

// cpuSIMD reports this CPU's level (x/sys/cpu; simdOld off x86).
func cpuSIMD() simdLevel {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX2 && x.HasFMA:
		return simdAVX512
	case x.HasAVX2 && x.HasFMA:
		return simdAVX2
	}
	return simdOld
}

// coreLevel is the level of an OpenBLAS x86-64 core name (as
// openblas_get_corename spells it, compared without case): the cores whose
// SGEMM kernels use AVX2+FMA or AVX-512. Every other core (Prescott,
// Nehalem, Sandybridge, …) counts as simdOld.
func coreLevel(core string) simdLevel {
	switch strings.ToLower(core) {
	case "skylakex", "cooperlake", "sapphirerapids":
		return simdAVX512
	case "haswell", "zen", "excavator":
		return simdAVX2
	}
	return simdOld
}

// coreAdvice is BLASAdvice's rule: a hint when the core in use is below
// the CPU's level and the user has not set OPENBLAS_CORETYPE.
func coreAdvice(core string, envSet bool, have simdLevel) string {
	if core == "" || envSet || coreLevel(core) >= have {
		return ""
	}
	want := "Haswell"
	if have == simdAVX512 {
		want = "SkylakeX"
	}
	return fmt.Sprintf("OpenBLAS runs its %s kernels on this CPU, which has %s (this OpenBLAS does not recognise the model); "+
		"start with OPENBLAS_CORETYPE=%s in the environment for its %s kernels (several times faster), "+
		"or use the default build (without -tags openblas), which picks its own", core, have, want, have)
}
