package nn

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sameF32 compares bit patterns, NaNs by NaN-ness, sign and payload.
func sameF32(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

// TestF16ToF32Exhaustive checks all 65536 half-precision patterns against
// the IEEE 754 definition evaluated in float64: (−1)^s·2^(e−15)·(1+m/1024)
// for normals, m·2^−24 for subnormals, ±Inf and NaN (payload kept in the
// top mantissa bits) for e = 31. Every half is exact in float32, so the
// comparison is bit for bit.
func TestF16ToF32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0:
			want = float64(m) * math.Pow(2, -24)
		case e == 31 && m == 0:
			want = math.Inf(1)
		case e == 31:
			want = math.NaN()
		default:
			want = (1 + float64(m)/1024) * math.Pow(2, float64(e-15))
		}
		if s == 1 {
			want = -want
		}
		got := F16ToF32(uint16(h))
		if math.IsNaN(want) {
			if b := math.Float32bits(got); !math.IsNaN(float64(got)) || b>>31 != uint32(s) || b&0x7fffff != uint32(m)<<13 {
				t.Fatalf("F16 %#04x: %v (bits %#08x), want a NaN with payload %#x", h, got, b, m)
			}
			continue
		}
		if w := float32(want); !sameF32(got, w) || (want == 0 && math.Signbit(float64(got)) != (s == 1)) {
			t.Fatalf("F16 %#04x: %v, want %v", h, got, w)
		}
	}
}

// TestBF16ToF32Exhaustive: the same against bfloat16's definition (8-bit
// exponent, bias 127, 7-bit mantissa).
func TestBF16ToF32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, m := h>>15, (h>>7)&0xff, h&0x7f
		var want float64
		switch {
		case e == 0:
			want = float64(m) * math.Pow(2, -133)
		case e == 255 && m == 0:
			want = math.Inf(1)
		case e == 255:
			want = math.NaN()
		default:
			want = (1 + float64(m)/128) * math.Pow(2, float64(e-127))
		}
		if s == 1 {
			want = -want
		}
		got := BF16ToF32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Float32bits(got)>>16 != uint32(h) {
				t.Fatalf("BF16 %#04x: %v, want its NaN", h, got)
			}
			continue
		}
		if w := float32(want); !sameF32(got, w) || (want == 0 && math.Signbit(float64(got)) != (s == 1)) {
			t.Fatalf("BF16 %#04x: %v, want %v", h, got, w)
		}
	}
}

// f64File is a safetensors file with one F64 tensor.
func f64File(v []float64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	js := `{"x":{"dtype":"F64","shape":[` + strconv.Itoa(len(v)) + `],"data_offsets":[0,` + strconv.Itoa(8*len(v)) + `]}}`
	return header(js, b)
}

// TestDecodeHalfAndDouble decodes hand-made F16, BF16, F64 and I64
// tensors. F64 → F32 must round to nearest, ties to even: 1+2⁻²⁴ is a tie
// and goes down to 1, 1+3·2⁻²⁴ goes up to 1+2⁻²², 2⁻¹⁵⁰ (half the
// smallest subnormal, a tie) goes to 0 and 3·2⁻¹⁵¹ up to 2⁻¹⁴⁹.
func TestDecodeHalfAndDouble(t *testing.T) {
	f16 := []uint16{0x3c00, 0x0001, 0x03ff, 0x7bff, 0xfc00, 0x7e00, 0x8000, 0xc000}
	bf16 := []uint16{0x3f80, 0x7f80, 0x0001, 0xbfc0}
	var body []byte
	for _, h := range f16 {
		body = binary.LittleEndian.AppendUint16(body, h)
	}
	for _, h := range bf16 {
		body = binary.LittleEndian.AppendUint16(body, h)
	}
	body = binary.LittleEndian.AppendUint64(body, 1<<40)
	body = binary.LittleEndian.AppendUint64(body, math.MaxUint64) // -1
	js := `{"h":{"dtype":"F16","shape":[2,4],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]},` +
		`"n":{"dtype":"I64","shape":[2],"data_offsets":[24,40]}}`
	sd, err := DecodeSafetensors(header(js, body))
	if err != nil {
		t.Fatal(err)
	}
	wantH := []float32{1, 5.9604645e-08, 6.097555e-05, 65504, float32(math.Inf(-1)), float32(math.NaN()), float32(math.Copysign(0, -1)), -2}
	h := sd.Tensors["h"]
	if !reflect.DeepEqual(h.Shape, []int{2, 4}) || h.DType != HostF32 {
		t.Errorf("F16 tensor: shape %v dtype %v", h.Shape, h.DType)
	}
	for i, w := range wantH {
		if g := h.Data[i]; !sameF32(g, w) && !(math.IsNaN(float64(g)) && math.IsNaN(float64(w))) {
			t.Errorf("F16 %#04x: %v, want %v", f16[i], g, w)
		}
	}
	wantB := []float32{1, float32(math.Inf(1)), math.Float32frombits(1 << 16), -1.5}
	for i, w := range wantB {
		if g := sd.Tensors["b"].Data[i]; !sameF32(g, w) {
			t.Errorf("BF16 %#04x: %v, want %v", bf16[i], g, w)
		}
	}
	if n := sd.Tensors["n"]; n.DType != HostI64 || !reflect.DeepEqual(n.Int64, []int64{1 << 40, -1}) {
		t.Errorf("I64 tensor %+v", n)
	}
	// Round trip of the I64 tensor through the encoder, bit for bit.
	enc, err := EncodeSafetensors(&StateDict{Tensors: map[string]HostTensor{"n": sd.Tensors["n"]}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(enc), `"dtype":"I64"`) {
		t.Error("I64 tensor not written as I64")
	}
	back, err := DecodeSafetensors(enc)
	if err != nil || !reflect.DeepEqual(back.Tensors["n"].Int64, []int64{1 << 40, -1}) {
		t.Errorf("I64 round trip: %v %v", back, err)
	}

	in := []float64{1 + math.Pow(2, -24), 1 + 3*math.Pow(2, -24), math.Pow(2, -150), 3 * math.Pow(2, -151), 1e300, -1e-300, 0.1, math.NaN()}
	want := []float32{1, 1 + 1.0/(1<<22), 0, math.Float32frombits(1), float32(math.Inf(1)), float32(math.Copysign(0, -1)), 0.1, float32(math.NaN())}
	sd, err = DecodeSafetensors(f64File(in))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		g := sd.Tensors["x"].Data[i]
		if !sameF32(g, w) && !(math.IsNaN(float64(w)) && math.IsNaN(float64(g))) {
			t.Errorf("F64 %v: %v, want %v", in[i], g, w)
		}
	}
	// Byte counts follow the dtype's width.
	if _, err := DecodeSafetensors(header(`{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}`, make([]byte, 4))); err == nil || !strings.Contains(err.Error(), "needs 6 bytes of F16") {
		t.Errorf("short F16 tensor: %v", err)
	}
}

const torchDtypes = `
import json, struct, sys, torch
torch.manual_seed(0)
x = torch.cat([torch.randn(200) * 3, torch.randn(50) * 1e-6, torch.randn(50) * 1e4,
               torch.tensor([0.0, -0.0, 6e-8, 1e-5, 65504.0, 70000.0, 1e-40, 3e38,
                             float("inf"), float("-inf"), float("nan")])])
x64 = torch.cat([x.double() * (1 + 1e-9), torch.tensor([1e300, 1e-300, 2.0**-150, 1 + 2.0**-24], dtype=torch.float64)])
parts = {
    "h": (x.half(), "F16", lambda t: t.view(torch.int16).numpy().tobytes()),
    "b": (x.bfloat16(), "BF16", lambda t: t.view(torch.int16).numpy().tobytes()),
    "d": (x64, "F64", lambda t: t.numpy().tobytes()),
    "n": (torch.tensor([7, -3, 2**40], dtype=torch.int64), "I64", lambda t: t.numpy().tobytes()),
}
header, blobs, off = {}, [], 0
for k, (t, dt, raw) in parts.items():
    b = raw(t)
    header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(b) for b in blobs]
with open(sys.argv[2], "wb") as f:
    for k in ("h", "b", "d"):
        f.write(parts[k][0].float().numpy().astype("<f4").tobytes())
`

// TestDecodeTorchDtypes: torch writes F16, BF16, F64 and I64 tensors
// (randoms over many magnitudes, F16 subnormals and overflow to inf, BF16
// subnormals, infinities, NaN, ±0) and its own .float() conversions; kiln
// must decode the same float32 bits.
func TestDecodeTorchDtypes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping PyTorch dtype test in -short mode")
	}
	requireTorch(t)
	dir := t.TempDir()
	file, ref, script := filepath.Join(dir, "d.safetensors"), filepath.Join(dir, "ref.f32"), filepath.Join(dir, "d.py")
	if err := os.WriteFile(script, []byte(torchDtypes), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command(python, script, file, ref).CombinedOutput(); err != nil {
		t.Fatalf("torch: %v\n%s", err, o)
	}
	sd, err := LoadSafetensors(file)
	if err != nil {
		t.Fatal(err)
	}
	want := readF32(t, ref)
	var got []float32
	for _, k := range []string{"h", "b", "d"} {
		got = append(got, sd.Tensors[k].Data...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, torch wrote %d", len(got), len(want))
	}
	for i := range want {
		if !sameF32(got[i], want[i]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Errorf("value %d: kiln %v (%#08x), torch %v (%#08x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
	if n := sd.Tensors["n"]; n.DType != HostI64 || !reflect.DeepEqual(n.Int64, []int64{7, -3, 1 << 40}) {
		t.Errorf("I64 from torch: %+v", n)
	}
}
