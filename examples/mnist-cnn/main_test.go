package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnml/kiln/data"
)

// runQuick runs the program with args and skips the test when the dataset
// files are not installed (the error says how to get them).
func runQuick(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(args, &out)
	if errors.Is(err, data.ErrNotFound) {
		t.Skipf("dataset not installed: %v", err)
	}
	return out.String(), err
}

// TestQuick is what CI runs: the -quick form must reach its bar (MNIST
// 0.95 after 2 epochs on 4000 images), print the confusion matrix and
// write the PNG.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a CNN for about 30 s")
	}
	dir := t.TempDir()
	out, err := runQuick(t, "-quick", "-log-every", "0", "-out", dir)
	t.Log("\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"test accuracy", "confusion matrix", "bar 0.9500: passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "misclassified.png")); err != nil || fi.Size() == 0 {
		t.Errorf("misclassified.png: %v", err)
	}
}

// TestBarFails shows that the program fails below its bar: 200 images
// and one epoch cannot reach 99.99%.
func TestBarFails(t *testing.T) {
	_, err := runQuick(t, "-samples", "200", "-test-samples", "100", "-epochs", "1", "-width", "4",
		"-bar", "0.9999", "-log-every", "0", "-out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "below the bar") {
		t.Fatalf("err = %v, want a bar failure", err)
	}
}
