package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/device/cpu"
)

// version and revision are set at link time by release and Docker builds:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.revision=$(git rev-parse HEAD)" ./cmd/kiln
//
// When they are empty, buildInfo falls back to what the Go toolchain
// recorded (the module version and the VCS stamp), so that a plain
// `go build` inside a git checkout still says which commit it came from.
var (
	version  string
	revision string
)

// versionInfo is what `kiln version` reports, also as JSON.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	CUDA      bool   `json:"cuda"`
	PTXISA    string `json:"ptx_isa"`
	CPUBLAS   string `json:"cpu_blas"` // kiln's GEMM, or OpenBLAS (for Gemm) in an openblas build
	// CPUBLASAdvice is cpu.BLASAdvice: a hint when the BLAS runs kernels
	// below the CPU's (an OpenBLAS that does not know the CPU), else empty.
	CPUBLASAdvice string `json:"cpu_blas_advice,omitempty"`
}

func buildInfo() versionInfo {
	v := versionInfo{
		Version:       version,
		Revision:      revision,
		GoVersion:     runtime.Version(),
		Platform:      runtime.GOOS + "/" + runtime.GOARCH,
		CUDA:          cudaBuilt,
		PTXISA:        ptxISA(),
		CPUBLAS:       cpu.BLAS(),
		CPUBLASAdvice: cpu.BLASAdvice(),
	}
	bi, ok := debug.ReadBuildInfo()
	if v.Version == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	if v.Revision == "" && ok {
		v.Revision = vcsRevision(bi.Settings)
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	if v.Revision == "" {
		// Built with -buildvcs=false, or outside a checkout.
		v.Revision = "unknown"
	}
	return v
}

// vcsRevision turns the toolchain's VCS stamp into "<hash>" or
// "<hash>-dirty" when the tree had uncommitted changes.
func vcsRevision(settings []debug.BuildSetting) string {
	var rev string
	var modified bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += "-dirty"
	}
	return rev
}

// ptxVersionRE finds the `.version X.Y` directive that opens every PTX
// module: the PTX ISA the kernels were generated for, which decides the
// oldest driver that can JIT-compile them.
var ptxVersionRE = regexp.MustCompile(`(?m)^\s*\.version\s+([0-9]+\.[0-9]+)`)

// parsePTXVersion returns the PTX ISA version of a PTX module, or "" when
// the text has no .version directive.
func parsePTXVersion(ptx []byte) string {
	m := ptxVersionRE.FindSubmatch(ptx)
	if m == nil {
		return ""
	}
	return string(bytes.TrimSpace(m[1]))
}

// embeddedPTXISA collects the PTX ISA versions of every kernel family in
// both of its builds (compute_70 and compute_80, fetched as cc 70 and 80).
// They should all agree; when they do not, all are listed, because the
// newest one decides the driver the binary needs.
func embeddedPTXISA(families []string, ptx func(family string, cc int) ([]byte, error)) string {
	seen := map[string]bool{}
	var versions []string
	for _, fam := range families {
		for _, cc := range []int{70, 80} {
			text, err := ptx(fam, cc)
			if err != nil {
				continue
			}
			if v := parsePTXVersion(text); v != "" && !seen[v] {
				seen[v] = true
				versions = append(versions, v)
			}
		}
	}
	if len(versions) == 0 {
		return "unknown (no embedded PTX found)"
	}
	sort.Strings(versions)
	return strings.Join(versions, ", ")
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, git revision, Go version and CUDA support of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildInfo()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "version:\t%s\n", v.Version)
			fmt.Fprintf(tw, "revision:\t%s\n", v.Revision)
			fmt.Fprintf(tw, "go:\t%s %s\n", v.GoVersion, v.Platform)
			fmt.Fprintf(tw, "cuda:\t%t\n", v.CUDA)
			fmt.Fprintf(tw, "ptx isa:\t%s\n", v.PTXISA)
			fmt.Fprintf(tw, "cpu blas:\t%s\n", v.CPUBLAS)
			if v.CPUBLASAdvice != "" {
				fmt.Fprintf(tw, "cpu blas advice:\t%s\n", v.CPUBLASAdvice)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON object")
	return cmd
}
