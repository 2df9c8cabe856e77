package text

import "fmt"

// Byte is the byte-level tokeniser: token i is the byte value i, so any
// string, valid UTF-8 or not, round-trips exactly.
type Byte struct{}

// Name returns "byte".
func (Byte) Name() string { return "byte" }

// VocabSize returns 256.
func (Byte) VocabSize() int { return 256 }

// String describes the tokeniser.
func (Byte) String() string { return "byte (256 symbols)" }

// Encode returns the bytes of s as tokens; it never fails.
func (Byte) Encode(s string) ([]int32, error) {
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int32(s[i])
	}
	return ids, nil
}

// Decode returns the bytes ids stand for.
func (b Byte) Decode(ids []int32) (string, error) { return decodeAll(b, ids) }

// AppendToken appends byte id to dst.
func (Byte) AppendToken(dst []byte, id int32) ([]byte, error) {
	if err := checkID("byte", id, 256); err != nil {
		return dst, err
	}
	return append(dst, byte(id)), nil
}

// MarshalJSON returns {"kind":"byte"}.
func (Byte) MarshalJSON() ([]byte, error) { return []byte(`{"kind":"byte"}`), nil }

var _ fmt.Stringer = Byte{}
