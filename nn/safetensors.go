package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/kilnml/kiln/device"
)

// SpecKey is the __metadata__ key under which a checkpoint stores the
// model spec, so that a file alone is enough to rebuild its model.
const SpecKey = "kiln.spec"

// maxHeader bounds the JSON header a reader accepts (the reference
// implementation uses 100 MB), so a corrupt length cannot make it allocate
// without limit.
const maxHeader = 100 << 20

// HostDType is the element type of a HostTensor.
type HostDType uint8

// The host dtypes. Float tensors of every width a file may hold (F16,
// BF16, F64) are converted to F32 when read.
const (
	// HostF32 is float32, in Data (the zero value).
	HostF32 HostDType = iota
	// HostI64 is int64, in Int64 (BatchNorm's num_batches_tracked).
	HostI64
)

// String is the safetensors name of the dtype ("F32", "I64").
func (d HostDType) String() string {
	switch d {
	case HostF32:
		return "F32"
	case HostI64:
		return "I64"
	}
	return fmt.Sprintf("HostDType(%d)", uint8(d))
}

// HostTensor is a tensor in host memory, row-major: float32 values in
// Data (DType HostF32, the zero value) or int64 values in Int64 (HostI64).
// A scalar has shape [] and one value.
type HostTensor struct {
	Shape []int
	DType HostDType
	Data  []float32
	Int64 []int64
}

// count is the number of values the tensor holds for its dtype.
func (t HostTensor) count() int {
	if t.DType == HostI64 {
		return len(t.Int64)
	}
	return len(t.Data)
}

// StateDict is a checkpoint in host memory: named tensors with PyTorch
// nn.Sequential state_dict names and layouts ("0.weight" as [out, in]) and
// the file's string metadata.
type StateDict struct {
	Path     string // the file it was read from, for error messages; empty when built in memory
	Names    []string
	Tensors  map[string]HostTensor
	Metadata map[string]string
}

// where names the state dict's origin in errors.
func (sd *StateDict) where() string {
	if sd.Path == "" {
		return "state dict"
	}
	return sd.Path
}

// StateDict copies the model's parameters to the host, in state_dict
// order, with the spec under SpecKey in Metadata (for a model built from
// a spec).
func (m *Sequential) StateDict() (*StateDict, error) {
	ps, err := m.set("StateDict")
	if err != nil {
		return nil, err
	}
	if ps.freed {
		return nil, fmt.Errorf("nn: StateDict: the model was freed")
	}
	sd, err := ps.StateDict()
	if err != nil {
		return nil, err
	}
	if m.hasSpec {
		sd.Metadata[SpecKey] = m.spec.String()
	}
	return sd, nil
}

// SaveSafetensors writes the model's parameters to path as a safetensors
// file (F32, little-endian, PyTorch nn.Sequential state_dict names and
// shapes), with the spec under "kiln.spec" in __metadata__ beside the given
// metadata. The write is atomic: a temporary file in the same folder is
// written, synced and renamed over path, so a crash leaves the old file or
// the new one, never half of one.
func SaveSafetensors(path string, m *Sequential, metadata map[string]string) error {
	sd, err := m.StateDict()
	if err != nil {
		return err
	}
	for k, v := range metadata {
		if k != SpecKey {
			sd.Metadata[k] = v
		}
	}
	return WriteSafetensors(path, sd)
}

// WriteSafetensors writes sd to path atomically (see SaveSafetensors).
func WriteSafetensors(path string, sd *StateDict) error {
	data, err := EncodeSafetensors(sd)
	if err != nil {
		return fmt.Errorf("nn: writing %s: %w", path, err)
	}
	return writeAtomic(path, data)
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("nn: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("nn: writing %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; a checkpoint is an ordinary output
	// (0644), and the mode is set before the rename so that the file never
	// appears under its name with another.
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("nn: setting the mode of %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("nn: syncing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("nn: closing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("nn: renaming %s to %s: %w", tmp, path, err)
	}
	// Make the rename itself durable; not every system can sync a folder.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// EncodeSafetensors serialises sd: an 8-byte little-endian header length,
// the JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {…}} padded with spaces to a multiple of 8, then the tensors' F32 data in
// sd.Names order (names missing from Names follow, sorted).
func EncodeSafetensors(sd *StateDict) ([]byte, error) {
	names := slices.Clone(sd.Names)
	seen := map[string]bool{}
	for _, n := range names {
		if _, ok := sd.Tensors[n]; !ok {
			return nil, fmt.Errorf("tensor %q is listed in Names but has no data", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("tensor %q is listed twice in Names", n)
		}
		seen[n] = true
	}
	var rest []string
	for n := range sd.Tensors {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)

	var h bytes.Buffer
	h.WriteByte('{')
	if len(sd.Metadata) > 0 {
		meta, err := json.Marshal(sd.Metadata)
		if err != nil {
			return nil, err
		}
		h.WriteString(`"__metadata__":`)
		h.Write(meta)
	}
	var off int
	for i, n := range names {
		if n == "__metadata__" {
			return nil, fmt.Errorf("a tensor cannot be named __metadata__")
		}
		t := sd.Tensors[n]
		count := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: shape %v has a negative dimension", n, t.Shape)
			}
			count *= d
		}
		if t.DType != HostF32 && t.DType != HostI64 {
			return nil, fmt.Errorf("tensor %q: unknown dtype %s", n, t.DType)
		}
		if count != t.count() {
			return nil, fmt.Errorf("tensor %q: shape %v holds %d values, data has %d", n, t.Shape, count, t.count())
		}
		if i > 0 || len(sd.Metadata) > 0 {
			h.WriteByte(',')
		}
		key, _ := json.Marshal(n)
		h.Write(key)
		h.WriteString(`:{"dtype":"` + t.DType.String() + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.Itoa(off))
		h.WriteByte(',')
		off += t.DType.size() * count
		h.WriteString(strconv.Itoa(off))
		h.WriteString("]}")
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	out := make([]byte, 8, 8+h.Len()+off)
	binary.LittleEndian.PutUint64(out, uint64(h.Len()))
	out = append(out, h.Bytes()...)
	for _, n := range names {
		t := sd.Tensors[n]
		if t.DType == HostI64 {
			for _, v := range t.Int64 {
				out = binary.LittleEndian.AppendUint64(out, uint64(v))
			}
			continue
		}
		for _, v := range t.Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}

// LoadSafetensors reads a safetensors file into host memory (dtypes as
// DecodeSafetensors reads them). A truncated or corrupt file gives an error naming the file
// and what is wrong with it, never a panic.
func LoadSafetensors(path string) (*StateDict, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nn: loading checkpoint: %w", err)
	}
	sd, err := DecodeSafetensors(data)
	if err != nil {
		return nil, fmt.Errorf("nn: checkpoint %s: %w", path, err)
	}
	sd.Path = path
	return sd, nil
}

type tensorHeader struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// DecodeSafetensors parses a safetensors file held in memory (see
// LoadSafetensors). F32 tensors are read as they are; F16, BF16 and F64
// tensors are converted to float32 (F16 and BF16 exactly, with their
// subnormals, infinities and NaNs; F64 rounded to nearest even), so that
// the published half-precision checkpoints load; I64 tensors are read
// into Int64. Other dtypes are an error naming the tensor.
func DecodeSafetensors(data []byte) (*StateDict, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("truncated: %d bytes, expected at least 8 (the header length)", len(data))
	}
	hl := binary.LittleEndian.Uint64(data)
	if hl > maxHeader {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d bytes: not a safetensors file, or corrupt", hl, maxHeader)
	}
	if hl > uint64(len(data)-8) {
		return nil, fmt.Errorf("truncated: the header says %d bytes of JSON, the file has %d after the length", hl, len(data)-8)
	}
	head, body := data[8:8+hl], data[8+hl:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(head, &raw); err != nil {
		return nil, fmt.Errorf("header is not a JSON object: %w", err)
	}
	sd := &StateDict{Tensors: map[string]HostTensor{}, Metadata: map[string]string{}}
	type span struct {
		name       string
		start, end uint64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sd.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__: expected an object of strings: %w", err)
			}
			if sd.Metadata == nil {
				sd.Metadata = map[string]string{}
			}
			continue
		}
		var th tensorHeader
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&th); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %w", name, err)
		}
		size, ok := dtypeSize[th.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: dtype %q, expected \"F32\", \"F16\", \"BF16\", \"F64\" (read as float32) or \"I64\"", name, th.DType)
		}
		if len(th.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets has %d values, expected 2 [begin, end]", name, len(th.DataOffsets))
		}
		start, end := th.DataOffsets[0], th.DataOffsets[1]
		if start > end || end > uint64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] outside the %d data bytes (truncated file?)", name, start, end, len(body))
		}
		count := uint64(1)
		shape := make([]int, len(th.Shape))
		for i, d := range th.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, fmt.Errorf("tensor %q: shape %v: dimension %d out of range", name, th.Shape, i)
			}
			shape[i] = int(d)
			if d != 0 && count > uint64(len(body))/uint64(d) {
				count = uint64(len(body)) + 1 // too large; reported below, no overflow
				continue
			}
			count *= uint64(d)
		}
		if count > uint64(len(body)) || count*size != end-start {
			return nil, fmt.Errorf("tensor %q: shape %v needs %d bytes of %s, data_offsets [%d, %d] give %d", name, th.Shape, count*size, th.DType, start, end, end-start)
		}
		sd.Tensors[name] = decodeTensor(th.DType, shape, body[start:end], int(count))
		spans = append(spans, span{name, start, end})
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].start != spans[j].start {
			return spans[i].start < spans[j].start
		}
		return spans[i].name < spans[j].name
	})
	for i, s := range spans {
		sd.Names = append(sd.Names, s.name)
		if i > 0 && s.start < spans[i-1].end && s.end > s.start {
			return nil, fmt.Errorf("tensors %q and %q overlap in the data section", spans[i-1].name, s.name)
		}
	}
	return sd, nil
}

// LoadState copies a state dict into the model's parameters. Names must
// match exactly (PyTorch's strict loading): a missing tensor, an unexpected
// one or a wrong shape is an error naming the file, the tensor and the
// expected shape, and then nothing is changed (ParamSet.LoadStateDict with
// Strict).
func (m *Sequential) LoadState(sd *StateDict) error {
	ps, err := m.set("LoadState")
	if err != nil {
		return err
	}
	if ps.freed {
		return fmt.Errorf("nn: LoadState: the model was freed")
	}
	_, err = ps.LoadStateDict(sd, LoadOptions{Strict: true})
	return err
}

// Load rebuilds a model from a checkpoint alone: the spec from its
// "kiln.spec" metadata, the parameters from its tensors. It returns the
// state dict too, for the rest of its metadata.
func Load(dev device.Device, path string) (*Sequential, *StateDict, error) {
	sd, err := LoadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	specStr, ok := sd.Metadata[SpecKey]
	if !ok {
		return nil, nil, fmt.Errorf("nn: checkpoint %s: no %q in __metadata__, so the model cannot be rebuilt from the file alone; build it from its spec and call LoadState", path, SpecKey)
	}
	spec, err := ParseSpec(specStr)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: checkpoint %s: __metadata__ %s: %w", path, SpecKey, err)
	}
	m, err := Build(dev, spec, Init{Weight: InitZeros, Bias: BiasZeros}, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: checkpoint %s: %w", path, err)
	}
	if err := m.LoadState(sd); err != nil {
		_ = m.Free()
		return nil, nil, err
	}
	return m, sd, nil
}

// dtypeSize is the byte width of each file dtype the decoder reads.
var dtypeSize = map[string]uint64{"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8}

// size is the byte width of a host dtype in a file.
func (d HostDType) size() int {
	if d == HostI64 {
		return 8
	}
	return 4
}

// decodeTensor converts count little-endian values of dtype dt (validated
// by the caller, len(b) = count × size) to a host tensor.
func decodeTensor(dt string, shape []int, b []byte, count int) HostTensor {
	if dt == "I64" {
		v := make([]int64, count)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return HostTensor{Shape: shape, DType: HostI64, Int64: v}
	}
	v := make([]float32, count)
	switch dt {
	case "F32":
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F16":
		for i := range v {
			v[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range v {
			v[i] = BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "F64":
		for i := range v {
			v[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
	return HostTensor{Shape: shape, Data: v}
}

// F16ToF32 converts IEEE 754 binary16 bits to float32, exactly: every
// half value (subnormals included) is a float32; infinities stay
// infinite and NaNs stay NaN with their payload.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0:
		// Zero or subnormal: mant · 2⁻²⁴, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	case 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// BF16ToF32 converts bfloat16 bits to float32: bfloat16 is the top half
// of a float32, so the conversion is a shift.
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }
