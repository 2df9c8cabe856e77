package cpu

import (
	"strings"
	"testing"
)

func TestCoreAdvice(t *testing.T) {
	for _, c := range []struct {
		core   string
		envSet bool
		have   simdLevel
		want   string // "" for no hint, else the OPENBLAS_CORETYPE value it names
	}{
		{"", false, simdAVX512, ""},                 // the default build: no OpenBLAS
		{"Prescott", false, simdAVX512, "SkylakeX"}, // 0.3.21 on an AVX-512 Xeon it does not know
		{"Prescott", true, simdAVX512, ""},          // OPENBLAS_CORETYPE set: the user's choice
		{"Sandybridge", false, simdAVX2, "Haswell"},
		{"Haswell", false, simdAVX512, "SkylakeX"},
		{"Haswell", false, simdAVX2, ""},
		{"SkylakeX", false, simdAVX512, ""},
		{"sapphirerapids", false, simdAVX512, ""},
		{"Zen", false, simdAVX2, ""},
		{"Prescott", false, simdOld, ""}, // an old CPU: nothing better to pick
	} {
		got := coreAdvice(c.core, c.envSet, c.have)
		switch {
		case c.want == "" && got != "":
			t.Errorf("coreAdvice(%q, %v, %v) = %q, want no hint", c.core, c.envSet, c.have, got)
		case c.want != "" && (!strings.Contains(got, "OPENBLAS_CORETYPE="+c.want+" ") || !strings.Contains(got, c.core)):
			t.Errorf("coreAdvice(%q, %v, %v) = %q, want a hint naming the core and OPENBLAS_CORETYPE=%s", c.core, c.envSet, c.have, got, c.want)
		}
	}
}

// TestBLASCore checks what openblas.go reads from the library: in an
// openblas build the core and config are known and BLAS() names the core;
// in the default build there is neither, and never a hint.
func TestBLASCore(t *testing.T) {
	if !useBLAS32 {
		if blasCore != "" || BLASAdvice() != "" {
			t.Fatalf("default build: blasCore %q, BLASAdvice %q; want both empty", blasCore, BLASAdvice())
		}
		return
	}
	if blasCore == "" || !strings.Contains(blasConfig, "OpenBLAS") {
		t.Fatalf("openblas build: core %q, config %q; want both from the library", blasCore, blasConfig)
	}
	if !strings.Contains(BLAS(), blasCore) {
		t.Errorf("BLAS() = %q does not name the core %q", BLAS(), blasCore)
	}
	if !strings.Contains(BLAS(), blasThreading()) {
		t.Errorf("BLAS() = %q does not say how the calls run (%q)", BLAS(), blasThreading())
	}
}
