//go:build linux

package text

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUnreadableCorpus covers read failures that hold even for root (who
// can read a file whatever its mode): a file whose reads fail
// (/proc/self/mem at offset 0 gives EIO) and a named pipe.
func TestUnreadableCorpus(t *testing.T) {
	cache := t.TempDir()
	_, err := Open("/proc/self/mem", Byte{}, Options{CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), "reading /proc/self/mem") {
		t.Fatalf("reading /proc/self/mem: err = %v, want a read error naming the file", err)
	}
	fifo := filepath.Join(t.TempDir(), "pipe.txt")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err = Open(fifo, Byte{}, Options{CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "not a regular file or a folder") {
		t.Fatalf("named pipe: err = %v", err)
	}
}
