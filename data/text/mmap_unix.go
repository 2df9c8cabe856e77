//go:build linux || darwin || freebsd

package text

import (
	"os"
	"syscall"
)

// mapFile maps the file at p read-only. mapped is false (and err nil) when
// the file cannot be mapped, so the caller reads it instead.
func mapFile(p string) (data []byte, mapped bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	size := st.Size()
	if size <= 0 || int64(int(size)) != size {
		return nil, false, nil
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, false, nil
	}
	return data, true, nil
}

// unmapFile releases a mapping made by mapFile.
func unmapFile(data []byte) error { return syscall.Munmap(data) }
