package device

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Backend is what a backend package registers: a way to list and open its
// devices.
type Backend interface {
	// Name is the spec prefix: "cpu" or "cuda".
	Name() string
	// Devices lists the devices this backend can open, in index order.
	Devices() ([]Info, error)
	// Open opens device number index.
	Open(index int) (Device, error)
}

var (
	mu       sync.Mutex
	backends = map[string]Backend{}
	// missing explains how to get a backend this binary was built without.
	missing = map[string]string{
		"cuda": "this binary was built without CUDA support; build one with `go build -tags cuda ./cmd/kiln` " +
			"(needs cuda.h and libcuda.so, e.g. Debian's nvidia-cuda-toolkit) or use the CUDA Docker image",
	}
)

// Register makes a backend available to Open and List. It panics if the
// name is registered twice, as database/sql.Register does: that is a
// programming error, not bad input.
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := backends[b.Name()]; dup {
		panic("device: Register called twice for backend " + b.Name())
	}
	backends[b.Name()] = b
}

// Backends lists the names of the registered backends, sorted.
func Backends() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookup(name string) (Backend, bool) {
	mu.Lock()
	defer mu.Unlock()
	b, ok := backends[name]
	return b, ok
}

// List describes every device of every registered backend. A backend that
// fails to enumerate is left out; its error is returned beside the rest.
func List() ([]Info, error) {
	var all []Info
	var firstErr error
	for _, name := range Backends() {
		b, _ := lookup(name)
		infos, err := b.Devices()
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("listing %s devices: %w", name, err)
		}
		all = append(all, infos...)
	}
	return all, firstErr
}

// Open opens a device by spec: "auto" (the first CUDA device when CUDA is
// compiled in and a GPU answers, else the CPU), "cpu", "cuda" (device 0) or
// "cuda:N".
func Open(spec string) (Device, error) {
	spec = strings.TrimSpace(strings.ToLower(spec))
	if spec == "auto" || spec == "" {
		// Open directly rather than listing first: listing a GPU's memory
		// creates and destroys a context, which Open would then redo.
		if b, ok := lookup("cuda"); ok {
			if d, err := b.Open(0); err == nil {
				return d, nil
			}
		}
		spec = "cpu"
	}
	name, idx := spec, 0
	if i := strings.IndexByte(spec, ':'); i >= 0 {
		name = spec[:i]
		n, err := strconv.Atoi(spec[i+1:])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("device spec %q: %w: the index after %q must be a non-negative integer; valid specs: %s",
				spec, ErrUnknownDevice, name+":", validSpecs())
		}
		idx = n
	}
	b, ok := lookup(name)
	if !ok {
		if why, known := missing[name]; known {
			return nil, fmt.Errorf("device spec %q: %w: %s", spec, ErrUnavailable, why)
		}
		return nil, fmt.Errorf("device spec %q: %w; valid specs: %s", spec, ErrUnknownDevice, validSpecs())
	}
	d, openErr := b.Open(idx)
	if openErr == nil {
		return d, nil
	}
	// Only on failure list the devices, to say which indices exist.
	infos, err := b.Devices()
	if err != nil {
		return nil, fmt.Errorf("device spec %q: %w", spec, openErr)
	}
	if idx >= len(infos) {
		return nil, fmt.Errorf("device spec %q: %w: %s has %d device(s); valid specs: %s",
			spec, ErrUnknownDevice, name, len(infos), validSpecs())
	}
	return nil, fmt.Errorf("device spec %q: %w", spec, openErr)
}

func validSpecs() string {
	specs := []string{"auto"}
	for _, name := range Backends() {
		specs = append(specs, name)
		if name != "cpu" {
			specs = append(specs, name+":N")
		}
	}
	return strings.Join(specs, ", ")
}
