// Package scripts holds no Go code: its test runs the shell scripts of this folder against fake
// programs, so that their exit status, which CI and people rely on, is checked without a GPU.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGPUMachine lays out what scripts/gpu-build.sh would copy to a GPU machine, with shell
// stubs in place of the real programs: cuda.test prints a test run whose result is set by the
// FAKE_TESTS variable ("pass", "fail" or "fail-exit0": a FAIL line but exit status 0), and
// kiln exits with FAKE_KILN_RC. nvidia-smi, ldconfig and python3 are stubbed on PATH, so the
// script needs neither a GPU nor PyTorch. It returns the folder and the PATH to use.
func fakeGPUMachine(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	lib := filepath.Join(dir, "lib")
	for _, d := range []string{bin, lib} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile("gpu-check.sh")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(dir, "gpu-check.sh"): string(script),
		filepath.Join(dir, "cuda.test"): `#!/bin/sh
case "$*" in
*-test.bench*) echo "BenchmarkFake 20 1000 ns/op"; echo PASS; exit 0 ;;
esac
echo "=== RUN   TestFake"
case "$FAKE_TESTS" in
pass) echo "--- PASS: TestFake (0.00s)"; echo PASS; exit 0 ;;
fail) echo "--- FAIL: TestFake (0.00s)"; echo FAIL; exit 1 ;;
fail-exit0) echo "--- FAIL: TestFake (0.00s)"; exit 0 ;;
esac
exit 3
`,
		filepath.Join(dir, "kiln"):           "#!/bin/sh\necho \"kiln $*\"\nexit ${FAKE_KILN_RC:-0}\n",
		filepath.Join(bin, "nvidia-smi"):     "#!/bin/sh\necho 'GPU 0: Fake GPU'\n",
		filepath.Join(bin, "ldconfig"):       "#!/bin/sh\nprintf '\\tlibcuda.so.1 (libc6,x86-64) => " + filepath.Join(lib, "libcuda.so.1") + "\\n'\n",
		filepath.Join(bin, "python3"):        "#!/bin/sh\nexit 0\n",
		filepath.Join(lib, "libcuda.so.1"):   "",
		filepath.Join(dir, "torch_gpu.py"):   "",
		filepath.Join(dir, "gpu_summary.py"): "",
	}
	for p, text := range files {
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, bin + string(os.PathListSeparator) + os.Getenv("PATH")
}

// TestGPUCheckExitStatus proves that gpu-check.sh exits 0 only when every check passed, and 1
// (after printing the summary) when the tests, or the command's training run, failed.
func TestGPUCheckExitStatus(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	dir, path := fakeGPUMachine(t)
	cases := []struct {
		name, tests, kilnRC string
		wantOK              bool
		wantText            string
	}{
		{"all pass", "pass", "0", true, "gpu-check: ok"},
		{"a test fails", "fail", "0", false, "gpu-check: FAILED: tests (exit 1, 1 failed)"},
		{"a FAIL line with exit 0", "fail-exit0", "0", false, "gpu-check: FAILED: tests (exit 0, 1 failed)"},
		{"kiln train and bench fail", "pass", "2", false, "gpu-check: FAILED: kiln train (exit 2); kiln bench (exit 2); kiln lm train (exit 2)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(bash, filepath.Join(dir, "gpu-check.sh"), out)
			cmd.Env = append(os.Environ(), "PATH="+path, "FAKE_TESTS="+c.tests, "FAKE_KILN_RC="+c.kilnRC)
			b, err := cmd.CombinedOutput()
			text := string(b)
			if c.wantOK && err != nil {
				t.Fatalf("gpu-check.sh failed on a passing run: %v\n%s", err, text)
			}
			if !c.wantOK {
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 1 {
					t.Fatalf("gpu-check.sh: err = %v, want exit status 1\n%s", err, text)
				}
			}
			lines := strings.Split(strings.TrimSpace(text), "\n")
			if last := lines[len(lines)-1]; last != c.wantText {
				t.Errorf("last line %q, want %q\n%s", last, c.wantText, text)
			}
			if !strings.Contains(text, "=== summary") {
				t.Errorf("the summary phase did not run:\n%s", text)
			}
		})
	}
}
