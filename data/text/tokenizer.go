package text

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Tokenizer turns text into token ids in [0, VocabSize()) and back.
//
// Implementations are safe for concurrent use once built.
type Tokenizer interface {
	// Name is the stable kind of the tokeniser: "byte", "char" or "gpt2".
	Name() string
	// VocabSize is the number of token ids; every id Encode returns is
	// below it.
	VocabSize() int
	// Encode returns the tokens of s. Only Char fails, on a rune outside
	// its vocabulary.
	Encode(s string) ([]int32, error)
	// Decode returns the text of ids; it fails on an id outside
	// [0, VocabSize()).
	Decode(ids []int32) (string, error)
	// AppendToken appends the bytes of one token to dst. A token may end
	// inside a multi-byte UTF-8 sequence (Byte, GPT2); StreamDecoder
	// reassembles those.
	AppendToken(dst []byte, id int32) ([]byte, error)
	// MarshalJSON returns the tokeniser's serialised form, which Load
	// restores: {"kind":"byte"}, {"kind":"gpt2","encoding":"r50k_base"}
	// or {"kind":"char","vocab":"<the sorted runes>"}.
	MarshalJSON() ([]byte, error)
}

// spec is the serialised form of every tokeniser.
type spec struct {
	Kind     string `json:"kind"`
	Encoding string `json:"encoding,omitempty"`
	Vocab    string `json:"vocab,omitempty"`
}

// Load restores a tokeniser from the blob its MarshalJSON wrote.
func Load(blob []byte) (Tokenizer, error) {
	var s spec
	if err := json.Unmarshal(blob, &s); err != nil {
		return nil, fmt.Errorf("text: tokenizer spec %.80q: %v", blob, err)
	}
	switch s.Kind {
	case "byte":
		return Byte{}, nil
	case "gpt2":
		if s.Encoding != "" && s.Encoding != gpt2Encoding {
			return nil, fmt.Errorf("text: gpt2 tokenizer spec has encoding %q, want %q", s.Encoding, gpt2Encoding)
		}
		return NewGPT2(), nil
	case "char":
		if s.Vocab == "" {
			return nil, fmt.Errorf("text: char tokenizer spec has an empty vocab")
		}
		if !utf8.ValidString(s.Vocab) {
			return nil, fmt.Errorf("text: char tokenizer spec: vocab is not valid UTF-8")
		}
		return NewChar([]rune(s.Vocab))
	}
	return nil, fmt.Errorf("text: tokenizer spec has kind %q, want byte, char or gpt2", s.Kind)
}

// New returns the tokeniser named kind that needs no corpus: "byte" or
// "gpt2". A Char tokeniser is built from its corpus with ScanChars or
// CharFromText.
func New(kind string) (Tokenizer, error) {
	switch kind {
	case "byte":
		return Byte{}, nil
	case "gpt2":
		return NewGPT2(), nil
	case "char":
		return nil, fmt.Errorf("text: the char tokenizer is built from its corpus (ScanChars, CharFromText), not by name")
	}
	return nil, fmt.Errorf("text: unknown tokenizer %q: want byte, char or gpt2", kind)
}

// checkID reports an id outside [0, n).
func checkID(kind string, id int32, n int) error {
	if id < 0 || int(id) >= n {
		return fmt.Errorf("text: %s tokenizer: token id %d outside [0, %d)", kind, id, n)
	}
	return nil
}

// decodeAll is Decode for tokenisers that implement AppendToken.
func decodeAll(t Tokenizer, ids []int32) (string, error) {
	buf := make([]byte, 0, len(ids)*2)
	var err error
	for _, id := range ids {
		if buf, err = t.AppendToken(buf, id); err != nil {
			return "", err
		}
	}
	return string(buf), nil
}

// StreamDecoder decodes tokens one at a time, as generation produces
// them. Next returns the text completed by a token; the bytes of a UTF-8
// sequence whose last byte has not arrived yet are held back (at most 3),
// and Flush returns them at the end. Bytes that cannot become valid UTF-8
// are passed through as they are, so the concatenation of everything Next
// and Flush return equals Decode of all the tokens, byte for byte.
type StreamDecoder struct {
	tok     Tokenizer
	pending []byte
}

// NewStreamDecoder returns a StreamDecoder for tok.
func NewStreamDecoder(tok Tokenizer) *StreamDecoder {
	return &StreamDecoder{tok: tok, pending: make([]byte, 0, 64)}
}

// Next adds one token and returns the text it completes (possibly empty).
// An invalid id returns an error and leaves the decoder as it was.
func (d *StreamDecoder) Next(id int32) (string, error) {
	n := len(d.pending)
	buf, err := d.tok.AppendToken(d.pending, id)
	if err != nil {
		d.pending = d.pending[:n]
		return "", err
	}
	cut := len(buf) - incompleteTail(buf)
	out := string(buf[:cut])
	d.pending = append(buf[:0], buf[cut:]...)
	return out, nil
}

// Flush returns the bytes held back (an incomplete UTF-8 sequence at the
// end of the stream, or nothing) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// incompleteTail returns how many bytes at the end of p are the start of a
// UTF-8 sequence that more bytes could still complete.
func incompleteTail(p []byte) int {
	// The last rune starts at most utf8.UTFMax-1 bytes before the end.
	for k := 1; k <= utf8.UTFMax-1 && k <= len(p); k++ {
		c := p[len(p)-k]
		if c&0xC0 == 0x80 { // continuation byte: keep looking for the lead
			continue
		}
		if !utf8.FullRune(p[len(p)-k:]) {
			return k
		}
		return 0
	}
	return 0
}
