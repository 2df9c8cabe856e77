package kernels

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGemmEmulation runs the real gemm.cu kernels on the CPU: the C++
// harness in testdata/gemm_emu compiles gemm.cu as host code with a small
// CUDA shim (one OS thread per CUDA thread, __syncthreads as a barrier,
// mma.sync and cp.async emulated from their PTX ISA definitions; see
// shim.h) and checks each launch plan below against a float64 reference,
// under AddressSanitizer and UBSan (out-of-bounds reads or writes, misaligned
// 16-byte accesses). It needs g++ and takes a minute or two; it is skipped
// with -short. KILN_GEMM_EMU_CXXFLAGS replaces the sanitizer flags (e.g.
// "-fsanitize=thread" to look for data races on shared memory).
func TestGemmEmulation(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: compiles and runs the C++ emulation of gemm.cu")
	}
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("g++ not found")
	}
	bin := filepath.Join(t.TempDir(), "gemm_emu")
	san := "-fsanitize=address,undefined -fno-sanitize-recover=all"
	if s := os.Getenv("KILN_GEMM_EMU_CXXFLAGS"); s != "" {
		san = s
	}
	args := append([]string{"-std=c++17", "-O1", "-pthread", "-Wno-unknown-pragmas"}, strings.Fields(san)...)
	args = append(args, "-o", bin, filepath.Join("testdata", "gemm_emu", "harness.cpp"))
	if out, err := exec.Command(gxx, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the emulation: %v\n%s", err, out)
	}

	all := gemmEmuCases()
	// Two passes: cp.async copies performed as late as allowed (stale reads
	// show), then, for the kernels that use cp.async, as early as possible
	// (overwrites of a stage still in use show).
	for _, eager := range []string{"0", "1"} {
		var cases []gemmEmuCase
		var in bytes.Buffer
		for _, c := range all {
			if eager == "0" || strings.Contains(c.line, "tf32") {
				cases = append(cases, c)
				in.WriteString(c.line + "\n")
			}
		}
		cmd := exec.Command(bin)
		cmd.Stdin = bytes.NewReader(in.Bytes())
		cmd.Env = append(os.Environ(), "KILN_EMU_EAGER="+eager)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		sc := bufio.NewScanner(bytes.NewReader(out))
		i := 0
		for sc.Scan() {
			if i >= len(cases) {
				t.Fatalf("more results than cases: %q", sc.Text())
			}
			if r := sc.Text(); !strings.HasPrefix(r, "ok") {
				t.Errorf("eager=%s %s: %s", eager, cases[i].desc, r)
			}
			i++
		}
		if i != len(cases) || (err != nil && !t.Failed()) {
			t.Fatalf("eager=%s: harness stopped after %d of %d cases (%v)\n%s", eager, i, len(cases), err, stderr.String())
		}
	}
	t.Logf("%d launch plans checked", len(all))
}

type gemmEmuCase struct {
	desc, line string
}

// gemmEmuCases lists the launches to emulate: for every shape and
// transpose combination, PlanGemm's own plans (fp32 and TF32) and each
// kernel family forced, with element offsets that make the operands
// misaligned in some cases and alpha, beta varied (beta == 0 fills C with
// NaN first, so a read of C would show).
func gemmEmuCases() []gemmEmuCase {
	shapes := [][3]int{
		{1, 1, 1}, {2, 3, 0}, {3, 5, 7}, {17, 33, 9}, {31, 70, 40},
		{96, 136, 36}, {65, 63, 130}, {130, 129, 17}, {128, 200, 64},
	}
	offsets := [][3]int{{0, 0, 0}, {1, 2, 3}, {4, 8, 4}, {0, 1, 0}, {3, 0, 1}}
	scales := [][2]float32{{1, 0}, {1.5, -0.75}, {0.5, 0}, {1, 1}}
	trans := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}

	var cases []gemmEmuCase
	// addBatched adds one launch of plan l for batch products with element
	// strides str (Gemm's single product: batch 1, strides 0).
	addBatched := func(what string, l GemmLaunch, ta, tb bool, m, n, k int, tf32 bool, str [3]int) {
		i := len(cases)
		off, sc := offsets[i%len(offsets)], scales[i%len(scales)]
		reduce := l.ReduceKernel
		if reduce == "" {
			reduce = "-"
		}
		tf := 0
		if tf32 {
			tf = 1
		}
		line := fmt.Sprintf("%s %d %d %d %d %d %s %d %d %d %d %d %d %d %d %g %g %d %d %d %d %d %d %d %d %d",
			l.Kernel, l.Grid[0], l.Grid[1], l.Grid[2], l.Block[0], l.WorkspaceFloats, reduce,
			l.ReduceGrid[0], l.ReduceGrid[1], l.ReduceBlock[0], b2i(ta), b2i(tb), m, n, k, sc[0], sc[1],
			off[0], off[1], off[2], tf, l.Batch, l.Splits, str[0], str[1], str[2])
		desc := fmt.Sprintf("%s m=%d n=%d k=%d batch=%d strides=%v %s splits=%d alpha=%g beta=%g offsets=%v",
			what, m, n, k, l.Batch, str, l.Kernel, l.Splits, sc[0], sc[1], off)
		cases = append(cases, gemmEmuCase{desc, line})
	}
	add := func(what string, l GemmLaunch, ta, tb bool, m, n, k int, tf32 bool) {
		addBatched(what, l, ta, tb, m, n, k, tf32, [3]int{})
	}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, tr := range trans {
			ta, tb := tr[0], tr[1]
			add("plan", PlanGemm(ta, tb, m, n, k, false, 90), ta, tb, m, n, k, false)
			add("big", planGemmWith(familyBig, ta, tb, m, n, k, 1), ta, tb, m, n, k, false)
			add("small/3", planGemmWith(familySmall, ta, tb, m, n, k, effectiveSplits(k, 3, familySmall.tileK)), ta, tb, m, n, k, false)
			add("tf32", planGemmWith(familyTF32, ta, tb, m, n, k, 1), ta, tb, m, n, k, true)
		}
	}
	// The MLP shapes, as planned (split-K), and a TF32 split.
	for _, tr := range trans {
		ta, tb := tr[0], tr[1]
		add("plan", PlanGemm(ta, tb, 64, 128, 784, false, 90), ta, tb, 64, 128, 784, false)
		add("plan", PlanGemm(ta, tb, 64, 784, 128, false, 90), ta, tb, 64, 784, 128, false)
		add("tf32/2", planGemmWith(familyTF32, ta, tb, 40, 136, 100, 2), ta, tb, 40, 136, 100, true)
	}
	// Strided batches (GemmBatched): packed, with gaps (odd strides, so
	// entries are misaligned in turn), one operand shared (stride 0), as
	// planned and with each family forced, split-K included.
	type bshape struct{ m, n, k, batch int }
	bshapes := []bshape{{3, 5, 7, 3}, {17, 33, 9, 2}, {65, 63, 130, 3}, {33, 33, 16, 4}}
	for si, bs := range bshapes {
		m, n, k, batch := bs.m, bs.n, bs.k, bs.batch
		strides := [][3]int{
			{m * k, k * n, m * n},       // packed
			{m*k + 1, k*n + 3, m*n + 5}, // gaps
			{0, k * n, m*n + 2},         // A shared
			{m*k + 4, 0, m * n},         // B shared
		}
		for ti, tr := range trans {
			ta, tb := tr[0], tr[1]
			str := strides[(si+ti)%len(strides)]
			addBatched("batched/plan", PlanGemmBatched(ta, tb, m, n, k, batch, false, 90), ta, tb, m, n, k, false, str)
			addBatched("batched/big", planGemmBatchedWith(familyBig, ta, tb, m, n, k, batch, 1), ta, tb, m, n, k, false, str)
			addBatched("batched/small/2", planGemmBatchedWith(familySmall, ta, tb, m, n, k, batch, effectiveSplits(k, 2, familySmall.tileK)),
				ta, tb, m, n, k, false, strides[(si+ti+1)%len(strides)])
			addBatched("batched/tf32", planGemmBatchedWith(familyTF32, ta, tb, m, n, k, batch, 1), ta, tb, m, n, k, true, str)
		}
	}
	// Small products with deep k: PlanGemmBatched splits them.
	for _, tr := range trans {
		ta, tb := tr[0], tr[1]
		addBatched("batched/plan-split", PlanGemmBatched(ta, tb, 16, 24, 300, 2, false, 90), ta, tb, 16, 24, 300, false,
			[3]int{16*300 + 1, 0, 16*24 + 3})
	}
	return cases
}

// TestPlanGemmBatched checks the batched plans: gridDim.z is batch·splits
// within the launch limit, the workspace holds every entry's partials and
// the reduction has one grid row per entry, and batches are split only when
// they give few blocks.
func TestPlanGemmBatched(t *testing.T) {
	for _, batch := range []int{1, 2, 3, 48, 1000, MaxGemmBatch} {
		for _, sh := range [][3]int{{1, 1, 1}, {16, 24, 300}, {256, 256, 64}, {256, 64, 256}, {7, 5, 4096}} {
			for _, tf := range []bool{false, true} {
				m, n, k := sh[0], sh[1], sh[2]
				l := PlanGemmBatched(false, true, m, n, k, batch, tf, 90)
				what := fmt.Sprintf("batch %d of %v tf32=%v: %s grid %v splits %d", batch, sh, tf, l.Kernel, l.Grid, l.Splits)
				if l.Batch != batch || int(l.Grid[2]) != batch*l.Splits || l.Grid[2] > MaxGemmBatch {
					t.Errorf("%s: gridDim.z is not batch·splits ≤ %d", what, MaxGemmBatch)
				}
				if l.Splits > 1 {
					if l.WorkspaceFloats != batch*l.Splits*m*n || l.ReduceGrid[1] != uint32(batch) {
						t.Errorf("%s: workspace %d, reduce grid %v", what, l.WorkspaceFloats, l.ReduceGrid)
					}
					if blocks := int(l.Grid[0]*l.Grid[1]) * batch; blocks >= gemmTargetBlocks/2 {
						t.Errorf("%s: split although the batch gives %d blocks", what, blocks)
					}
				} else if l.WorkspaceFloats != 0 || l.ReduceKernel != "" {
					t.Errorf("%s: unsplit plan with a workspace or reduction", what)
				}
				if batch == 1 {
					if p := PlanGemm(false, true, m, n, k, tf, 90); p != l {
						t.Errorf("%s: PlanGemm gives %+v", what, p)
					}
				}
			}
		}
	}
	// The attention shape fills the GPU with the 128×128 kernel.
	if l := PlanGemmBatched(false, true, 256, 256, 64, 48, false, 90); l.Kernel != "kiln_sgemm_nt" || l.Splits != 1 {
		t.Errorf("48 × 256×256×64: %s with %d splits, want kiln_sgemm_nt unsplit", l.Kernel, l.Splits)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
