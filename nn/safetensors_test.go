package nn

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "5-4-relu-drop0.1-3-leakyrelu0.2-2", Init{}, 7)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := SaveSafetensors(path, m, map[string]string{"epoch": "3", SpecKey: "ignored"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after an atomic save, expected only the file (no temp left)", len(entries))
	}
	sd, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if sd.Metadata[SpecKey] != "5-4-relu-drop0.1-3-leakyrelu0.2-2" || sd.Metadata["epoch"] != "3" {
		t.Errorf("metadata %v", sd.Metadata)
	}
	if want := []string{"0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"}; !reflect.DeepEqual(sd.Names, want) {
		t.Errorf("names %v, expected %v", sd.Names, want)
	}
	orig, _ := m.StateDict()
	for _, n := range orig.Names {
		if !reflect.DeepEqual(orig.Tensors[n], sd.Tensors[n]) {
			t.Errorf("tensor %s differs after the round trip", n)
		}
	}
	m2, sd2, err := Load(dev, path)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Free()
	if m2.Spec().String() != m.Spec().String() || sd2.Metadata["epoch"] != "3" {
		t.Errorf("Load rebuilt %s with metadata %v", m2.Spec(), sd2.Metadata)
	}
	back, _ := m2.StateDict()
	for _, n := range orig.Names {
		if !reflect.DeepEqual(orig.Tensors[n], back.Tensors[n]) {
			t.Errorf("tensor %s differs after Load", n)
		}
	}
	// The file layout itself: 8-byte length, JSON, F32 little-endian data.
	raw, _ := os.ReadFile(path)
	hl := binary.LittleEndian.Uint64(raw)
	if hl%8 != 0 || !strings.Contains(string(raw[8:8+hl]), `"0.weight":{"dtype":"F32","shape":[4,5],"data_offsets":[0,80]}`) {
		t.Errorf("header %q", raw[8:8+hl])
	}
}

func TestLoadStateErrors(t *testing.T) {
	dev := openCPU(t)
	m := buildModel(t, dev, "3-2", Init{}, 1)
	good := func() *StateDict {
		sd, _ := m.StateDict()
		sd.Path = "ckpt.safetensors"
		return sd
	}
	before, _ := m.StateDict()
	cases := []struct {
		name string
		edit func(sd *StateDict)
		want []string
	}{
		{"missing", func(sd *StateDict) { delete(sd.Tensors, "0.bias") }, []string{"ckpt.safetensors", `missing tensor "0.bias"`, "expected shape [2]"}},
		{"shape", func(sd *StateDict) {
			sd.Tensors["0.weight"] = HostTensor{Shape: []int{3, 2}, Data: make([]float32, 6)}
		}, []string{"ckpt.safetensors", `tensor "0.weight" has shape [3 2], expected [2 3]`}},
		{"extra", func(sd *StateDict) { sd.Tensors["1.weight"] = HostTensor{Shape: []int{1}, Data: []float32{1}} }, []string{`unexpected tensor(s) ["1.weight"]`}},
	}
	for _, c := range cases {
		sd := good()
		for n, v := range sd.Tensors { // fresh data, so an accidental load would show
			d := make([]float32, len(v.Data))
			for i := range d {
				d[i] = 99
			}
			sd.Tensors[n] = HostTensor{Shape: v.Shape, Data: d}
		}
		c.edit(sd)
		err := m.LoadState(sd)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, expected it to contain %q", c.name, err, w)
			}
		}
		after, _ := m.StateDict()
		if !reflect.DeepEqual(before.Tensors, after.Tensors) {
			t.Errorf("%s: a failed LoadState changed the model", c.name)
		}
	}
}

// header builds a safetensors file from a raw JSON header and data.
func header(json string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(json)))
	return append(append(b, json...), data...)
}

func TestDecodeSafetensorsErrors(t *testing.T) {
	f32x2 := make([]byte, 8)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "truncated: 0 bytes"},
		{"short length", []byte{1, 2, 3}, "truncated"},
		{"header past end", header(`{}`, nil)[:9], "truncated: the header says 2 bytes"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<62), "exceeds the limit"},
		{"not json", header(`{"a":`, nil), "not a JSON object"},
		{"dtype", header(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, f32x2), `tensor "w": dtype "U8", expected "F32"`},
		{"offsets count", header(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, f32x2), "data_offsets has 1 values"},
		{"offsets past end", header(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, f32x2), "outside the 8 data bytes"},
		{"shape vs size", header(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32x2), "shape [3] needs 12 bytes"},
		{"negative dim", header(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32x2), "out of range"},
		{"overflowing shape", header(`{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}`, f32x2), "needs"},
		{"bad metadata", header(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
		{"unknown field", header(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, f32x2), `tensor "w": bad header entry`},
		{"overlap", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32x2), "overlap"},
	}
	for _, c := range cases {
		_, err := DecodeSafetensors(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, expected one containing %q", c.name, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	_ = os.WriteFile(path, []byte{1}, 0o644)
	if _, err := LoadSafetensors(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadSafetensors error %v does not name the file", err)
	}
	if _, _, err := Load(openCPU(t), path); err == nil {
		t.Error("Load of a corrupt file succeeded")
	}
}

// FuzzDecodeSafetensors: no input makes the reader panic; whatever it
// accepts re-encodes to a file that decodes to the same tensors. The seed
// corpus (a valid file, its truncations and the error cases) runs as part
// of go test.
func FuzzDecodeSafetensors(f *testing.F) {
	sd := &StateDict{
		Names: []string{"0.weight", "0.bias"},
		Tensors: map[string]HostTensor{
			"0.weight": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
			"0.bias":   {Shape: []int{2}, Data: []float32{-1, 0.5}},
		},
		Metadata: map[string]string{SpecKey: "3-2"},
	}
	valid, err := EncodeSafetensors(sd)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, n := range []int{0, 7, 8, 9, 20, len(valid) / 2, len(valid) - 1} {
		f.Add(valid[:n])
	}
	f.Add(header(`{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(header(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, nil))
	f.Add(header(`{"w":{"dtype":"F32","shape":[1,1],"data_offsets":[4,0]}}`, make([]byte, 4)))
	f.Add(header(`[]`, nil))
	f.Add(header(`null`, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := DecodeSafetensors(data)
		if err != nil {
			return
		}
		enc, err := EncodeSafetensors(sd)
		if err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		sd2, err := DecodeSafetensors(enc)
		if err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
		if !sameBits(sd.Tensors, sd2.Tensors) {
			t.Fatal("tensors changed through a re-encode")
		}
	})
}

// sameBits compares tensors bit for bit (NaN payloads included).
func sameBits(a, b map[string]HostTensor) bool {
	if len(a) != len(b) {
		return false
	}
	for n, x := range a {
		y, ok := b[n]
		if !ok || !slices.Equal(x.Shape, y.Shape) || len(x.Data) != len(y.Data) {
			return false
		}
		for i := range x.Data {
			if math.Float32bits(x.Data[i]) != math.Float32bits(y.Data[i]) {
				return false
			}
		}
	}
	return true
}
