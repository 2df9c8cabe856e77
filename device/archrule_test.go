package device_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The one rule of the architecture: nn, train and data talk to
// device.Device only and never import a backend. This test asks the go
// tool for their dependencies, in the default and the cuda build.

const module = "github.com/kilnml/kiln"

var backends = []string{module + "/device/cpu", module + "/device/cuda"}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Skipf("go tool unavailable: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	return filepath.Dir(gomod)
}

func TestArchitectureRule(t *testing.T) {
	root := moduleRoot(t)
	for _, tags := range []string{"", "cuda"} {
		t.Run("tags="+tags, func(t *testing.T) {
			// Only the layers that exist yet are listed: a pattern that
			// matches nothing makes go list fail.
			var pkgs []string
			for _, p := range []string{"./nn/...", "./train/...", "./data/..."} {
				args := []string{"list", "-e", "-f", "{{.ImportPath}}", p}
				cmd := exec.Command("go", args...)
				cmd.Dir = root
				if out, err := cmd.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
					pkgs = append(pkgs, p)
				}
			}
			if len(pkgs) == 0 {
				t.Skip("none of nn, train, data exists yet")
			}
			// -deps with -f prints every package with its direct
			// imports, from which the offending chain is rebuilt.
			args := []string{"list", "-e", "-deps", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}"}
			if tags != "" {
				args = append(args, "-tags", tags)
			}
			cmd := exec.Command("go", append(args, pkgs...)...)
			cmd.Dir = root
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			imports := map[string][]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				pkg, deps, _ := strings.Cut(line, ":")
				imports[pkg] = strings.Fields(deps)
			}
			checked := 0
			for _, layer := range []string{"/nn", "/train", "/data"} {
				for pkg := range imports {
					if pkg != module+layer && !strings.HasPrefix(pkg, module+layer+"/") {
						continue
					}
					checked++
					for _, bad := range backends {
						if chain := importChain(imports, pkg, bad); chain != nil {
							t.Errorf("%s depends on backend %s: %s\n(nn, train and data must use device.Device only; blank-import backends in main packages and tests)",
								pkg, bad, strings.Join(chain, " → "))
						}
					}
				}
			}
			if checked == 0 {
				t.Fatalf("go list -deps %v listed none of the packages it was asked about:\n%s", pkgs, out)
			}
		})
	}
}

// importChain returns the import path from "from" to "to" (breadth-first,
// so the shortest), or nil when there is none.
func importChain(imports map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append([]string{p}, chain...)
			}
			return chain
		}
		for _, q := range imports[p] {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

func TestImportChain(t *testing.T) {
	imports := map[string][]string{
		"a": {"b", "c"},
		"b": {"d"},
		"c": {"d"},
		"d": {"e"},
	}
	if got := strings.Join(importChain(imports, "a", "e"), ">"); got != "a>b>d>e" {
		t.Errorf("importChain a→e = %q, want a>b>d>e", got)
	}
	if importChain(imports, "b", "c") != nil {
		t.Errorf("importChain found a path b→c that does not exist")
	}
}
