// Command gen compiles every kernels/*.cu to PTX with nvcc, for the virtual
// architectures compute_70 and compute_80, into kernels/ptx/<family>_sm70.ptx
// and kernels/ptx/<family>_sm80.ptx. `go generate ./kernels` runs it from
// the kernels directory.
//
// The output is deterministic: nvcc runs on relative paths without line
// information (no file names or dates in the PTX), files are processed in
// sorted order, and stale PTX of deleted sources is removed. Flags: -O3,
// no fast math (results must match the CPU backend).
//
// Usage: go run ./gen [-nvcc path] [-dir kernels-dir] [-check]
// With -check it compiles into a temporary directory and fails when the
// committed PTX differs (for CI).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// archs are the virtual architectures each family is compiled for, and
// the file suffix each one gets.
var archs = []struct {
	arch, suffix string
}{
	{"compute_70", "sm70"},
	{"compute_80", "sm80"},
}

func main() {
	nvcc := flag.String("nvcc", "nvcc", "the nvcc to run")
	dir := flag.String("dir", ".", "the kernels directory (holding *.cu and ptx/)")
	check := flag.Bool("check", false, "compile into a temporary directory and compare with the committed PTX")
	flag.Parse()
	if err := run(*nvcc, *dir, *check); err != nil {
		fmt.Fprintln(os.Stderr, "kernels/gen:", err)
		os.Exit(1)
	}
}

func run(nvcc, dir string, check bool) error {
	sources, err := filepath.Glob(filepath.Join(dir, "*.cu"))
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return fmt.Errorf("no .cu files in %s", dir)
	}
	sort.Strings(sources)
	version, err := exec.Command(nvcc, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("running %s --version: %v\n%s", nvcc, err, version)
	}
	for _, line := range strings.Split(string(version), "\n") {
		if strings.Contains(line, "release") {
			fmt.Printf("kernels/gen: nvcc %s\n", strings.TrimSpace(line))
		}
	}

	outDir := filepath.Join(dir, "ptx")
	if check {
		if outDir, err = os.MkdirTemp("", "kiln-ptx-"); err != nil {
			return err
		}
		defer os.RemoveAll(outDir)
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, src := range sources {
		family := strings.TrimSuffix(filepath.Base(src), ".cu")
		for _, a := range archs {
			name := family + "_" + a.suffix + ".ptx"
			want[name] = true
			out := filepath.Join(outDir, name)
			// Relative paths, run from the kernels directory: nothing
			// machine-specific can reach the PTX.
			cmd := exec.Command(nvcc, "-ptx", "-O3", "-std=c++14", "-arch="+a.arch,
				"-o", relOrAbs(dir, out), filepath.Base(src))
			cmd.Dir = dir
			if msg, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
			} else if len(bytes.TrimSpace(msg)) > 0 {
				fmt.Printf("%s\n", msg)
			}
			fmt.Printf("kernels/gen: %s -> ptx/%s\n", filepath.Base(src), name)
		}
	}
	committed := filepath.Join(dir, "ptx")
	if check {
		var stale []string
		for name := range want {
			got, err1 := os.ReadFile(filepath.Join(outDir, name))
			old, err2 := os.ReadFile(filepath.Join(committed, name))
			if err1 != nil || err2 != nil || !bytes.Equal(got, old) {
				stale = append(stale, name)
			}
		}
		extra, _ := filepath.Glob(filepath.Join(committed, "*.ptx"))
		for _, p := range extra {
			if !want[filepath.Base(p)] {
				stale = append(stale, filepath.Base(p)+" (no source)")
			}
		}
		if len(stale) > 0 {
			sort.Strings(stale)
			return fmt.Errorf("committed PTX is out of date, run go generate ./kernels: %s", strings.Join(stale, ", "))
		}
		fmt.Println("kernels/gen: committed PTX matches the sources")
		return nil
	}
	// Remove PTX whose source is gone.
	old, _ := filepath.Glob(filepath.Join(outDir, "*.ptx"))
	for _, p := range old {
		if !want[filepath.Base(p)] {
			if err := os.Remove(p); err != nil {
				return err
			}
			fmt.Printf("kernels/gen: removed stale %s\n", filepath.Base(p))
		}
	}
	return nil
}

// relOrAbs returns target relative to base when it can, else absolute.
func relOrAbs(base, target string) string {
	if r, err := filepath.Rel(base, target); err == nil {
		return r
	}
	if a, err := filepath.Abs(target); err == nil {
		return a
	}
	return target
}
