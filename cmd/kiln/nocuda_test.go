//go:build !cuda

package main

import (
	"strings"
	"testing"
)

// TestDeviceCUDAWithoutCUDA: a CPU-only binary asked for the GPU must say
// that it was built without CUDA and how to build one, and exit 1.
func TestDeviceCUDAWithoutCUDA(t *testing.T) {
	for _, cmd := range [][]string{
		{"train", "--device", "cuda", "--epochs", "1"},
		{"train", "--device", "cuda:1"},
		{"bench", "--device", "cuda"},
	} {
		out, errOut, code := kiln(t, cmd...)
		if code != 1 {
			t.Fatalf("kiln %s: exit %d, want 1\n%s%s", strings.Join(cmd, " "), code, out, errOut)
		}
		for _, want := range []string{"--device", "built without CUDA", "-tags cuda"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("kiln %s: stderr %q lacks %q", strings.Join(cmd, " "), errOut, want)
			}
		}
		if strings.Contains(out, "epoch") {
			t.Errorf("kiln %s trained although the device could not be opened:\n%s", strings.Join(cmd, " "), out)
		}
	}
}
