package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// ptxFiles holds the generated PTX (see generate.go): for each kernel
// family (one .cu file) a compute_70 and a compute_80 version.
//
//go:embed ptx/*.ptx
var ptxFiles embed.FS

// PTX returns the PTX of a kernel family ("elementwise", "gemm", ...) for a
// GPU of compute capability cc, written major·10 + minor (90 for an H200):
// the compute_80 build for cc ≥ 80 (it may use Ampere instructions such as
// cp.async and TF32 mma), the portable compute_70 build below that. The
// driver JIT-compiles it for the GPU present. GPUs below compute
// capability 7.0 are refused.
func PTX(family string, cc int) ([]byte, error) {
	if cc < 70 {
		return nil, fmt.Errorf("kernels: compute capability %d.%d is not supported (kiln's PTX needs 7.0 or newer)", cc/10, cc%10)
	}
	suffix := "sm70"
	if cc >= 80 {
		suffix = "sm80"
	}
	name := "ptx/" + family + "_" + suffix + ".ptx"
	b, err := ptxFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("kernels: no PTX for family %q (%s; known families: %s): %w",
			family, name, strings.Join(Families(), ", "), err)
	}
	return b, nil
}

// Families lists the kernel families that have embedded PTX, sorted.
func Families() []string {
	seen := map[string]bool{}
	entries, _ := fs.ReadDir(ptxFiles, "ptx")
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".ptx")
		if i := strings.LastIndexByte(name, '_'); i > 0 {
			seen[name[:i]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
