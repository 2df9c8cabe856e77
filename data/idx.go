package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// IDX is one decoded IDX file (the format of MNIST and Fashion-MNIST): its
// dimensions and its unsigned-byte payload, row-major.
type IDX struct {
	Dims []int
	Data []uint8
}

// maxIDXElements bounds what a header may claim (2^31 bytes), so a corrupt
// or hostile header yields an error instead of an out-of-memory crash.
const maxIDXElements = 1 << 31

// ReadIDX decodes an IDX stream, gzip-compressed or not (detected by the
// gzip magic bytes 1f 8b). Only the unsigned-byte type (0x08) is accepted,
// the one MNIST-style files use. name is used in error messages.
func ReadIDX(r io.Reader, name string) (*IDX, error) {
	br := bufio.NewReader(r)
	if m, err := br.Peek(2); err == nil && m[0] == 0x1f && m[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("data: %s: bad gzip stream: %v", name, err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("data: %s: IDX header: want 4 magic bytes, %v", name, eofText(err))
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, fmt.Errorf("data: %s: not an IDX file: magic % x, want 00 00 <type> <ndim>", name, hdr)
	}
	if hdr[2] != 0x08 {
		return nil, fmt.Errorf("data: %s: IDX magic 0x%08x: data type 0x%02x (%s) not supported, want 0x08 (unsigned byte)", name, binary.BigEndian.Uint32(hdr[:]), hdr[2], idxTypeName(hdr[2]))
	}
	nd := int(hdr[3])
	if nd < 1 || nd > 4 {
		return nil, fmt.Errorf("data: %s: IDX has %d dimensions, want 1 to 4", name, nd)
	}
	dims := make([]int, nd)
	total := 1
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("data: %s: IDX header: dimension %d of %d: %v", name, i+1, nd, eofText(err))
		}
		v := binary.BigEndian.Uint32(b[:])
		if v == 0 && i == 0 {
			return nil, fmt.Errorf("data: %s: IDX count (dimension 1, the number of samples) is 0, want at least 1", name)
		}
		if v == 0 || v > maxIDXElements {
			return nil, fmt.Errorf("data: %s: IDX dimension %d is %d, want 1 to %d", name, i+1, v, maxIDXElements)
		}
		dims[i] = int(v)
		total *= dims[i]
		if total > maxIDXElements {
			return nil, fmt.Errorf("data: %s: IDX dimensions %v exceed %d elements", name, dims[:i+1], maxIDXElements)
		}
	}
	// ReadAll grows with what is really there, so a header that claims more
	// than the file holds costs no more memory than the file.
	payload, err := io.ReadAll(io.LimitReader(br, int64(total)+1))
	if err != nil {
		return nil, fmt.Errorf("data: %s: reading IDX data: %v", name, err)
	}
	if len(payload) < total {
		return nil, fmt.Errorf("data: %s: IDX data truncated: dimensions %v need %d bytes, file has %d", name, dims, total, len(payload))
	}
	if len(payload) > total {
		return nil, fmt.Errorf("data: %s: IDX has trailing bytes after the %d bytes that dimensions %v describe", name, total, dims)
	}
	return &IDX{Dims: dims, Data: payload}, nil
}

// ReadIDXFile reads an IDX file (gzipped or not) from disk.
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	defer f.Close()
	return ReadIDX(f, path)
}

// WriteIDX encodes u8 data with the given dimensions as an (uncompressed)
// IDX stream; tests and tools use it to make fixtures and subsets.
func WriteIDX(w io.Writer, dims []int, payload []uint8) error {
	if len(dims) < 1 || len(dims) > 255 {
		return fmt.Errorf("data: WriteIDX: %d dimensions, want 1 to 255", len(dims))
	}
	total := 1
	for _, d := range dims {
		if d <= 0 || d > maxIDXElements {
			return fmt.Errorf("data: WriteIDX: dimension %d out of range", d)
		}
		total *= d
	}
	if total != len(payload) {
		return fmt.Errorf("data: WriteIDX: dimensions %v need %d bytes, have %d", dims, total, len(payload))
	}
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		_ = binary.Write(&buf, binary.BigEndian, uint32(d))
	}
	buf.Write(payload)
	_, err := w.Write(buf.Bytes())
	return err
}

func idxTypeName(t byte) string {
	switch t {
	case 0x09:
		return "signed byte"
	case 0x0B:
		return "int16"
	case 0x0C:
		return "int32"
	case 0x0D:
		return "float32"
	case 0x0E:
		return "float64"
	}
	return "unknown"
}

func eofText(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "file ends early"
	}
	return err.Error()
}

// LoadIDXPair reads an images file (magic 0x00000803: unsigned bytes
// [n, rows, columns]) and its labels file (magic 0x00000801: unsigned
// bytes [n]) into a classification Dataset of Shape [1, rows, columns].
// Pixels are scaled to [0, 1] (x/255); labels must lie in [0, classes), and
// both files must hold the same count n. Errors name the file, the field
// (magic, count, label of a sample) and what was expected.
func LoadIDXPair(name, imagesPath, labelsPath string, classes int) (*Dataset, error) {
	im, err := ReadIDXFile(imagesPath)
	if err != nil {
		return nil, err
	}
	lb, err := ReadIDXFile(labelsPath)
	if err != nil {
		return nil, err
	}
	return idxDataset(name, im, lb, imagesPath, labelsPath, classes)
}

// The magic numbers of the two roles of an MNIST-style file: unsigned
// bytes (0x08) with three dimensions [n, rows, columns] for images, and
// with one dimension [n] for labels.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// checkIDXRole reports a file whose magic number (its dimension count:
// ReadIDX accepts only unsigned bytes) is not the one of its role.
func checkIDXRole(path, role string, x *IDX, magic uint32, layout string) error {
	if got := uint32(0x0800 | len(x.Dims)); got != magic {
		return fmt.Errorf("data: %s: magic 0x%08x (unsigned bytes, dimensions %v), want 0x%08x (unsigned bytes, %s) for %s file", path, got, x.Dims, magic, layout, role)
	}
	return nil
}

func idxDataset(name string, im, lb *IDX, imagesPath, labelsPath string, classes int) (*Dataset, error) {
	if err := checkIDXRole(imagesPath, "an images", im, idxImagesMagic, "3 dimensions [count, rows, columns]"); err != nil {
		return nil, err
	}
	if err := checkIDXRole(labelsPath, "a labels", lb, idxLabelsMagic, "1 dimension [count]"); err != nil {
		return nil, err
	}
	n := im.Dims[0]
	if lb.Dims[0] != n {
		return nil, fmt.Errorf("data: %s has %d labels but %s has %d images; want the same count in both", labelsPath, lb.Dims[0], imagesPath, n)
	}
	if classes <= 0 {
		return nil, fmt.Errorf("data: %s: classes = %d, want > 0", labelsPath, classes)
	}
	shape := []int{1, im.Dims[1], im.Dims[2]} // one channel, NCHW
	features := len(im.Data) / n
	d := &Dataset{
		Name:     name,
		X:        make([]float32, len(im.Data)),
		Features: features,
		Shape:    shape,
		Labels:   make([]int32, n),
		Classes:  classes,
		Source:   imagesPath + ", " + labelsPath,
	}
	for i, v := range im.Data {
		d.X[i] = float32(v) / 255
	}
	for i, v := range lb.Data {
		if int(v) >= classes {
			return nil, fmt.Errorf("data: %s: sample %d: label %d out of range [0, %d)", labelsPath, i, v, classes)
		}
		d.Labels[i] = int32(v)
	}
	return d, nil
}
