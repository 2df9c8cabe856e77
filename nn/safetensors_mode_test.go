package nn

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSafetensorsMode checks that a checkpoint is written with mode
// 0644, as any other output (os.CreateTemp alone would leave 0600).
func TestWriteSafetensorsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	sd := &StateDict{Names: []string{"w"}, Tensors: map[string]HostTensor{"w": {Shape: []int{2}, Data: []float32{1, 2}}}}
	if err := WriteSafetensors(path, sd); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o644 {
		t.Fatalf("mode %v, want 0644", got)
	}
}
