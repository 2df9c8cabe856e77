//go:build amd64 && !purego

package gemm

import (
	"os"
	"strings"
	"testing"
)

// TestKernelsForFeatures: a kernel is offered only where the processor has
// every feature its assembly uses. The AVX-512 edge kernels use KMOVD and
// KSHIFTRD (AVX512BW), so AVX512F alone (Knights Landing) must not pick
// them.
func TestKernelsForFeatures(t *testing.T) {
	names := func(ks []*kernel) string {
		var l []string
		for _, k := range ks {
			l = append(l, k.name)
		}
		return strings.Join(l, ",")
	}
	for _, c := range []struct {
		f    x86Features
		want string
	}{
		{x86Features{avx512f: true, avx512bw: true, avx2: true, fma: true}, "avx512,avx2"},
		{x86Features{avx512f: true, avx2: true, fma: true}, "avx2"},
		{x86Features{avx512bw: true, avx2: true, fma: true}, "avx2"},
		{x86Features{avx512f: true, avx512bw: true, avx2: true}, ""},
		{x86Features{avx2: true, fma: true}, "avx2"},
		{x86Features{avx2: true}, ""},
		{x86Features{fma: true}, ""},
	} {
		if got := names(kernelsFor(c.f)); got != c.want {
			t.Errorf("kernelsFor(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	// The BW instructions really are in the AVX-512 kernels (if they go,
	// this test and the BW requirement can be revisited).
	src, err := os.ReadFile("kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "KMOVD") {
		t.Errorf("kernel_amd64.s no longer uses KMOVD: revisit the AVX512BW requirement")
	}
}
