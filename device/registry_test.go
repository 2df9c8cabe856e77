package device_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
)

// cudaCompiled reports whether this test binary has a CUDA backend.
func cudaCompiled() bool {
	for _, b := range device.Backends() {
		if b == "cuda" {
			return true
		}
	}
	return false
}

func TestOpenCPU(t *testing.T) {
	for _, spec := range []string{"cpu", " CPU ", "cpu:0"} {
		dev, err := device.Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		if dev.Name() != "cpu" || dev.Info().Backend != "cpu" {
			t.Errorf("Open(%q) gave %q (backend %q), want the cpu device", spec, dev.Name(), dev.Info().Backend)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func TestOpenAutoWithoutCUDA(t *testing.T) {
	if cudaCompiled() {
		t.Skip("CUDA backend compiled in: auto may pick a GPU")
	}
	for _, spec := range []string{"auto", ""} {
		dev, err := device.Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		if dev.Info().Backend != "cpu" {
			t.Errorf("Open(%q) without CUDA gave backend %q, want cpu", spec, dev.Info().Backend)
		}
		dev.Close()
	}
}

func TestOpenCUDAWithoutCUDA(t *testing.T) {
	if cudaCompiled() {
		t.Skip("CUDA backend compiled in")
	}
	for _, spec := range []string{"cuda", "cuda:1"} {
		_, err := device.Open(spec)
		if !errors.Is(err, device.ErrUnavailable) {
			t.Fatalf("Open(%q): got %v, want ErrUnavailable", spec, err)
		}
		msg := err.Error()
		for _, want := range []string{"built without CUDA", "-tags cuda"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Open(%q) error %q does not say %q", spec, msg, want)
			}
		}
	}
}

func TestOpenUnknown(t *testing.T) {
	_, err := device.Open("tpu")
	if !errors.Is(err, device.ErrUnknownDevice) {
		t.Fatalf("Open(\"tpu\"): got %v, want ErrUnknownDevice", err)
	}
	for _, want := range []string{"auto", "cpu"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(\"tpu\") error %q does not list the valid spec %q", err, want)
		}
	}
	for _, spec := range []string{"cpu:3", "cpu:-1", "cpu:x"} {
		dev, err := device.Open(spec)
		if err == nil {
			dev.Close()
			t.Errorf("Open(%q) succeeded; the CPU backend has only device 0", spec)
			continue
		}
		if !errors.Is(err, device.ErrUnknownDevice) {
			t.Errorf("Open(%q): got %v, want ErrUnknownDevice", spec, err)
		}
	}
}

func TestList(t *testing.T) {
	infos, err := device.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	found := false
	for _, in := range infos {
		if in.Spec == "cpu" {
			found = true
			if in.Backend != "cpu" || in.Cores < 1 || in.Name == "" || in.Memory <= 0 {
				t.Errorf("cpu Info = %+v: want backend cpu, a name, cores ≥ 1 and memory > 0", in)
			}
		}
	}
	if !found {
		t.Errorf("List() = %+v has no cpu device", infos)
	}
	if b := device.Backends(); len(b) == 0 || !contains(b, "cpu") {
		t.Errorf("Backends() = %v, want it to include cpu", b)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
