package kernels

import (
	"slices"
	"strings"
	"testing"
)

// familyOf finds the kernel family of a plan by its kernel name.
func familyOf(t *testing.T, name string) gemmFamily {
	t.Helper()
	for _, f := range gemmFamilies {
		if strings.HasPrefix(name, f.prefix+"_") && len(name) == len(f.prefix)+3 {
			return f
		}
	}
	t.Fatalf("kernel %q belongs to no family", name)
	return gemmFamily{}
}

// checkPlan checks the invariants every plan must satisfy.
func checkPlan(t *testing.T, l GemmLaunch, transA, transB bool, m, n, k int, tf32 bool, cc int) {
	t.Helper()
	f := familyOf(t, l.Kernel)
	if !strings.HasSuffix(l.Kernel, "_"+transSuffix(transA, transB)) {
		t.Errorf("%v: kernel %s for transA=%v transB=%v", [3]int{m, n, k}, l.Kernel, transA, transB)
	}
	if !slices.Contains(GemmKernelNames(cc), l.Kernel) {
		t.Errorf("%v: kernel %s is not in the PTX for cc %d", [3]int{m, n, k}, l.Kernel, cc)
	}
	if f == familyTF32 && (!tf32 || cc < 80) {
		t.Errorf("%v: TF32 kernel chosen with tf32=%v cc=%d", [3]int{m, n, k}, tf32, cc)
	}
	// The grid covers C exactly with whole tiles.
	if int(l.Grid[0]) != ceilDiv(n, f.tileN) || int(l.Grid[1]) != ceilDiv(m, f.tileM) {
		t.Errorf("%v: grid %v does not cover C with %dx%d tiles", [3]int{m, n, k}, l.Grid, f.tileM, f.tileN)
	}
	if l.Grid[1] > 65535 || l.Grid[2] > 65535 || l.Grid[0] == 0 || l.Grid[1] == 0 || l.Grid[2] == 0 {
		t.Errorf("%v: grid %v out of range", [3]int{m, n, k}, l.Grid)
	}
	if l.Block != [3]uint32{uint32(f.threads), 1, 1} || f.threads%32 != 0 || f.threads > 1024 {
		t.Errorf("%v: block %v, kernel wants %d threads", [3]int{m, n, k}, l.Block, f.threads)
	}
	if l.SharedBytes != 0 {
		t.Errorf("%v: dynamic shared memory %d, kernels use static only", [3]int{m, n, k}, l.SharedBytes)
	}
	// Split-K: consistent fields, no empty slice, slices cover k.
	if l.Splits < 1 || int(l.Grid[2]) != l.Splits {
		t.Fatalf("%v: splits %d, grid %v", [3]int{m, n, k}, l.Splits, l.Grid)
	}
	if l.Splits == 1 {
		if l.WorkspaceFloats != 0 || l.ReduceKernel != "" {
			t.Errorf("%v: unsplit plan with workspace %d, reduce %q", [3]int{m, n, k}, l.WorkspaceFloats, l.ReduceKernel)
		}
		return
	}
	if l.WorkspaceFloats != l.Splits*m*n || l.ReduceKernel != SplitKReduceKernel {
		t.Errorf("%v: split %d with workspace %d, reduce %q", [3]int{m, n, k}, l.Splits, l.WorkspaceFloats, l.ReduceKernel)
	}
	chunk := splitChunk(k, l.Splits, f.tileK)
	if chunk%f.tileK != 0 || (l.Splits-1)*chunk >= k || l.Splits*chunk < k {
		t.Errorf("%v: %d splits of %d do not tile k without an empty slice", [3]int{m, n, k}, l.Splits, chunk)
	}
	if l.Splits > maxSplits {
		t.Errorf("%v: %d splits", [3]int{m, n, k}, l.Splits)
	}
	if l.ReduceBlock != [3]uint32{reduceThreads, 1, 1} || l.ReduceGrid[0] == 0 || l.ReduceGrid[0] > 65535 ||
		l.ReduceGrid[1] != 1 || l.ReduceGrid[2] != 1 {
		t.Errorf("%v: reduce launch %v %v", [3]int{m, n, k}, l.ReduceGrid, l.ReduceBlock)
	}
}

func TestPlanGemmInvariants(t *testing.T) {
	dims := []int{1, 2, 3, 7, 8, 17, 63, 64, 65, 127, 128, 129, 255, 256, 784, 1000, 1024, 4096}
	for _, m := range dims {
		for _, n := range dims {
			for _, k := range []int{0, 1, 5, 64, 127, 128, 784, 4096, 100000} {
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					for _, tf := range []bool{false, true} {
						for _, cc := range []int{70, 80, 90} {
							l := PlanGemm(tr[0], tr[1], m, n, k, tf, cc)
							checkPlan(t, l, tr[0], tr[1], m, n, k, tf, cc)
						}
					}
				}
			}
		}
	}
}

// The shapes the brief names: large square products take the fast tiles,
// the MLP shapes small tiles with enough blocks to fill the GPU.
func TestPlanGemmChoices(t *testing.T) {
	cases := []struct {
		ta, tb  bool
		m, n, k int
		tf32    bool
		cc      int
		kernel  string
		minBlk  int // least number of blocks (all splits)
	}{
		{false, false, 4096, 4096, 4096, false, 90, "kiln_sgemm_nn", 1024},
		{false, false, 4096, 4096, 4096, true, 90, "kiln_sgemm_tf32_nn", 1024},
		{false, false, 4096, 4096, 4096, true, 70, "kiln_sgemm_nn", 1024},
		{true, true, 2048, 2048, 2048, false, 90, "kiln_sgemm_tt", 256},
		// MLP 784-128-10 at batch 64: forward x·W1ᵀ, backward dX and dW.
		{false, true, 64, 128, 784, false, 90, "kiln_sgemm_small_nt", 20},
		{false, true, 64, 256, 784, false, 90, "kiln_sgemm_small_nt", 40},
		{true, false, 128, 784, 64, false, 90, "kiln_sgemm_small_tn", 26},
		{false, false, 64, 784, 128, false, 90, "kiln_sgemm_small_nn", 13},
		{false, false, 64, 784, 256, false, 90, "kiln_sgemm_small_nn", 52},
		{true, false, 256, 784, 64, false, 90, "kiln_sgemm_small_tn", 52},
		// TF32 is not worth it on small products: fp32 plan.
		{false, true, 64, 128, 784, true, 90, "kiln_sgemm_small_nt", 20},
	}
	for _, c := range cases {
		l := PlanGemm(c.ta, c.tb, c.m, c.n, c.k, c.tf32, c.cc)
		checkPlan(t, l, c.ta, c.tb, c.m, c.n, c.k, c.tf32, c.cc)
		blocks := int(l.Grid[0] * l.Grid[1] * l.Grid[2])
		if l.Kernel != c.kernel || blocks < c.minBlk {
			t.Errorf("%dx%dx%d tf32=%v cc=%d: %s with %d blocks (splits %d); want %s with ≥ %d",
				c.m, c.n, c.k, c.tf32, c.cc, l.Kernel, blocks, l.Splits, c.kernel, c.minBlk)
		}
	}
}

func TestGemmKernelNames(t *testing.T) {
	if n := len(GemmKernelNames(70)); n != 9 {
		t.Errorf("cc 70: %d kernels, want 9", n)
	}
	names := GemmKernelNames(90)
	if len(names) != 13 || !slices.Contains(names, "kiln_sgemm_tf32_tn") || !slices.Contains(names, SplitKReduceKernel) {
		t.Errorf("cc 90: %v", names)
	}
}
