package text

import (
	"fmt"
	"sync"

	"github.com/tiktoken-go/tokenizer/codec"
)

// gpt2Encoding is tiktoken's name for GPT-2's byte-pair encoding.
const gpt2Encoding = "r50k_base"

// GPT2EndOfText is the id of GPT-2's <|endoftext|> token, the last of its
// 50257.
const GPT2EndOfText = 50256

// GPT2 is GPT-2's byte-pair encoding (tiktoken's r50k_base, the ranks of
// OpenAI's encoder.json), through github.com/tiktoken-go/tokenizer, which
// embeds the ranks in the binary: nothing is downloaded.
//
// Encode treats its input as ordinary text, as tiktoken's encode_ordinary
// does: the characters "<|endoftext|>" are encoded as text, never as the
// special token; append GPT2EndOfText yourself to mark a document's end.
// Decode of GPT2EndOfText gives "<|endoftext|>". Invalid UTF-8 in the input
// is read as U+FFFD, so only valid UTF-8 round-trips (as with tiktoken,
// which takes a Python str).
type GPT2 struct {
	codec *codec.Codec
	once  sync.Once
	toks  []string // id → bytes, built on first decode
	err   error
}

var (
	gpt2Once   sync.Once
	gpt2Shared *GPT2
)

// NewGPT2 returns the GPT-2 tokeniser. The ranks are loaded once per
// process (tens of milliseconds) and shared.
func NewGPT2() *GPT2 {
	gpt2Once.Do(func() { gpt2Shared = &GPT2{codec: codec.NewR50kBase()} })
	return gpt2Shared
}

// Name returns "gpt2".
func (*GPT2) Name() string { return "gpt2" }

// VocabSize returns 50257.
func (*GPT2) VocabSize() int { return GPT2EndOfText + 1 }

// String describes the tokeniser.
func (*GPT2) String() string { return "gpt2 (r50k_base BPE, 50257 symbols)" }

// Encode returns GPT-2's tokens for s.
func (g *GPT2) Encode(s string) ([]int32, error) {
	ids, _, err := g.codec.Encode(s)
	if err != nil {
		return nil, fmt.Errorf("text: gpt2 tokenizer: %v", err)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out, nil
}

// Decode returns the text of ids.
func (g *GPT2) Decode(ids []int32) (string, error) { return decodeAll(g, ids) }

// AppendToken appends the bytes of token id to dst; they may end inside a
// multi-byte UTF-8 sequence.
func (g *GPT2) AppendToken(dst []byte, id int32) ([]byte, error) {
	if err := checkID("gpt2", id, g.VocabSize()); err != nil {
		return dst, err
	}
	g.once.Do(g.buildTable)
	if g.err != nil {
		return dst, g.err
	}
	return append(dst, g.toks[id]...), nil
}

// buildTable fills the id → bytes table from the library's decoder.
func (g *GPT2) buildTable() {
	g.toks = make([]string, g.VocabSize())
	for id := range GPT2EndOfText {
		s, err := g.codec.Decode([]uint{uint(id)})
		if err != nil || s == "" {
			g.err = fmt.Errorf("text: gpt2 tokenizer: the embedded ranks have no token %d: %v", id, err)
			return
		}
		g.toks[id] = s
	}
	g.toks[GPT2EndOfText] = "<|endoftext|>"
}

// MarshalJSON returns {"kind":"gpt2","encoding":"r50k_base"}.
func (*GPT2) MarshalJSON() ([]byte, error) {
	return []byte(`{"kind":"gpt2","encoding":"` + gpt2Encoding + `"}`), nil
}
