package gemm

import (
	"bytes"
	"os"
	"testing"

	"github.com/kilnml/kiln/device/cpu/internal/gemm/asmgen"
)

// TestAsmGenerated checks that the committed assembly is what the
// generator writes (run `go generate ./device/cpu/internal/gemm` after
// changing asmgen).
func TestAsmGenerated(t *testing.T) {
	want := asmgen.Generate()
	got, err := os.ReadFile("kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernel_amd64.s is stale: run go generate ./device/cpu/internal/gemm")
	}
}
