//go:build !(linux || darwin || freebsd)

package text

// mapFile reports that mapping is unavailable here; the caller reads the
// file into memory instead.
func mapFile(p string) (data []byte, mapped bool, err error) { return nil, false, nil }

// unmapFile is never called where mapFile maps nothing.
func unmapFile(data []byte) error { return nil }
