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
	add := func(what string, l GemmLaunch, ta, tb bool, m, n, k int, tf32 bool) {
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
		line := fmt.Sprintf("%s %d %d %d %d %d %s %d %d %d %d %d %d %d %g %g %d %d %d %d",
			l.Kernel, l.Grid[0], l.Grid[1], l.Grid[2], l.Block[0], l.WorkspaceFloats, reduce,
			l.ReduceGrid[0], l.ReduceBlock[0], b2i(ta), b2i(tb), m, n, k, sc[0], sc[1], off[0], off[1], off[2], tf)
		desc := fmt.Sprintf("%s m=%d n=%d k=%d %s splits=%d alpha=%g beta=%g offsets=%v",
			what, m, n, k, l.Kernel, l.Splits, sc[0], sc[1], off)
		cases = append(cases, gemmEmuCase{desc, line})
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
	return cases
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
