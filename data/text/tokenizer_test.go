package text

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// samples are the texts every tokeniser must round-trip: ASCII, Chinese,
// emoji (with a skin-tone modifier and zero-width joiners), mixed.
var samples = []string{
	"",
	"hello world",
	"Hello, world!\n\n  Call me Ishmael.\t",
	"请考试我的软件！12345",
	"白鲸记：我叫以实玛利。",
	"👍🏽 family: 👨‍👩‍👧 and 🐋",
	"mixed — “quotes” ‘and’ café naïve Ωmega ∑ 𝄞",
}

func allTokenizers(t testing.TB) []Tokenizer {
	var all strings.Builder
	for _, s := range samples {
		all.WriteString(s)
	}
	c, err := CharFromText(all.String())
	if err != nil {
		t.Fatal(err)
	}
	return []Tokenizer{Byte{}, c, NewGPT2()}
}

func TestRoundTrip(t *testing.T) {
	for _, tok := range allTokenizers(t) {
		for _, s := range samples {
			ids, err := tok.Encode(s)
			if err != nil {
				t.Fatalf("%s: Encode(%q): %v", tok.Name(), s, err)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("%s: Encode(%q) gave id %d outside [0, %d)", tok.Name(), s, id, tok.VocabSize())
				}
			}
			got, err := tok.Decode(ids)
			if err != nil {
				t.Fatalf("%s: Decode: %v", tok.Name(), err)
			}
			if got != s {
				t.Errorf("%s: Decode(Encode(%q)) = %q", tok.Name(), s, got)
			}
		}
	}
}

func TestByteTokens(t *testing.T) {
	// Invalid UTF-8 (a lone continuation byte, 0xff, a truncated
	// three-byte sequence) must round-trip byte for byte, and each token
	// must be the byte value itself.
	s := "ok\x80\xff\xfe 中\xe4\xb8"
	ids, _ := Byte{}.Encode(s)
	if len(ids) != len(s) {
		t.Fatalf("Encode gave %d tokens for %d bytes", len(ids), len(s))
	}
	for i := range len(s) {
		if ids[i] != int32(s[i]) {
			t.Fatalf("token %d = %d, want byte %d", i, ids[i], s[i])
		}
	}
	if got, _ := (Byte{}).Decode(ids); got != s {
		t.Fatalf("Decode = %q, want %q", got, s)
	}
	// A partial multi-byte sequence decodes (to its raw bytes) without
	// panicking.
	if got, err := (Byte{}).Decode([]int32{0xe4, 0xb8}); err != nil || got != "\xe4\xb8" {
		t.Fatalf("Decode of a partial sequence = %q, %v", got, err)
	}
	for _, bad := range []int32{-1, 256, 1 << 20} {
		if _, err := (Byte{}).Decode([]int32{65, bad}); err == nil || !strings.Contains(err.Error(), "outside [0, 256)") {
			t.Errorf("Decode(%d): err = %v, want an out-of-range error", bad, err)
		}
	}
}

func TestCharVocabulary(t *testing.T) {
	text := "the whale — 白鲸 — the end"
	c, err := CharFromText(text)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: the distinct runes, sorted.
	set := map[rune]bool{}
	for _, r := range text {
		set[r] = true
	}
	var want []rune
	for r := range set {
		want = append(want, r)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if !slices.Equal(c.Runes(), want) || c.VocabSize() != len(want) {
		t.Fatalf("vocab = %q, want %q", string(c.Runes()), string(want))
	}
	ids, err := c.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, r := range text {
		if got := want[ids[i]]; got != r {
			t.Fatalf("token %d = %d (%q), want %q", i, ids[i], got, r)
		}
		i++
	}
	// A rune outside the vocabulary is an error naming it and its offset.
	_, err = c.Encode("the xylophone")
	if err == nil || !strings.Contains(err.Error(), `'x'`) || !strings.Contains(err.Error(), "at byte 4") {
		t.Fatalf("Encode of an unknown rune: err = %v, want it to name 'x' at byte 4", err)
	}
	_, err = c.Encode("the \xff")
	if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Fatalf("Encode of invalid UTF-8: err = %v", err)
	}
	if _, err := c.Decode([]int32{int32(len(want))}); err == nil {
		t.Fatal("Decode of an id past the vocabulary succeeded")
	}
	if _, err := CharFromText(""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("CharFromText(\"\"): err = %v, want an empty-corpus error", err)
	}
	if _, err := NewChar([]rune("ba")); err == nil {
		t.Fatal("NewChar accepted an unsorted vocabulary")
	}
	// Invalid bytes in the corpus read as U+FFFD, which then encodes.
	c2, _ := CharFromText("a\xffb")
	if ids, err := c2.Encode("\xfe"); err != nil || len(ids) != 1 || c2.Runes()[ids[0]] != utf8.RuneError {
		t.Fatalf("U+FFFD fallback: %v, %v", ids, err)
	}
}

// TestGPT2IDs checks GPT-2 ids against published ones:
//   - "Hello world" → [15496, 995] and " Hello world" → [18435, 995]: the
//     GPT2Tokenizer docstring of Hugging Face transformers
//     (src/transformers/models/gpt2/tokenization_gpt2.py);
//   - "hello world" → [31373, 995] and the runs of zeros: OpenAI tiktoken,
//     tests/test_encoding.py (test_simple, test_simple_repeated) for the
//     "gpt2" encoding;
//   - "hello <|endoftext|>" → [31373, 220, 50256] (same test_simple, with
//     the special token allowed): checked here as the ordinary text
//     "hello " plus GPT2EndOfText, which Decode must spell back.
func TestGPT2IDs(t *testing.T) {
	g := NewGPT2()
	cases := []struct {
		s    string
		want []int32
	}{
		{"Hello world", []int32{15496, 995}},
		{" Hello world", []int32{18435, 995}},
		{"hello world", []int32{31373, 995}},
		{"hello ", []int32{31373, 220}},
		{"0", []int32{15}},
		{"0000", []int32{2388}},
		{"00000000", []int32{8269}},
		{"000000000", []int32{10535, 830}},
		{"0000000000000000", []int32{25645}},
		{"00000000000000000", []int32{8269, 10535, 830}},
	}
	for _, c := range cases {
		got, err := g.Encode(c.s)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, %v; want %v", c.s, got, err, c.want)
		}
	}
	if g.VocabSize() != 50257 {
		t.Errorf("VocabSize = %d, want 50257", g.VocabSize())
	}
	s, err := g.Decode([]int32{31373, 220, GPT2EndOfText})
	if err != nil || s != "hello <|endoftext|>" {
		t.Errorf("Decode([31373 220 50256]) = %q, %v", s, err)
	}
	if _, err := g.Decode([]int32{50257}); err == nil {
		t.Error("Decode(50257) succeeded")
	}
}

func TestLoad(t *testing.T) {
	for _, tok := range allTokenizers(t) {
		blob, err := tok.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(blob) {
			t.Fatalf("%s: MarshalJSON gave invalid JSON %s", tok.Name(), blob)
		}
		back, err := Load(blob)
		if err != nil {
			t.Fatalf("%s: Load(%s): %v", tok.Name(), blob, err)
		}
		if back.Name() != tok.Name() || back.VocabSize() != tok.VocabSize() {
			t.Fatalf("%s: Load gave %s with %d symbols, want %d", tok.Name(), back.Name(), back.VocabSize(), tok.VocabSize())
		}
		for _, s := range samples {
			a, _ := tok.Encode(s)
			b, _ := back.Encode(s)
			if !slices.Equal(a, b) {
				t.Fatalf("%s: the loaded tokenizer encodes %q as %v, the original as %v", tok.Name(), s, b, a)
			}
		}
		// Marshalling is stable: the same blob twice.
		blob2, _ := back.MarshalJSON()
		if !bytes.Equal(blob, blob2) {
			t.Fatalf("%s: MarshalJSON after Load = %s, before %s", tok.Name(), blob2, blob)
		}
	}
	for _, bad := range []string{``, `{`, `{"kind":"bpe"}`, `{"kind":"char"}`, `{"kind":"char","vocab":"ba"}`, `{"kind":"gpt2","encoding":"cl100k_base"}`} {
		if _, err := Load([]byte(bad)); err == nil {
			t.Errorf("Load(%s) succeeded", bad)
		}
	}
	for _, kind := range []string{"byte", "gpt2"} {
		if tok, err := New(kind); err != nil || tok.Name() != kind {
			t.Errorf("New(%q) = %v, %v", kind, tok, err)
		}
	}
	if _, err := New("char"); err == nil {
		t.Error("New(char) succeeded without a corpus")
	}
}

// runeBoundary returns the largest k' <= k at which s[:k'] ends on a rune
// boundary of the valid UTF-8 string s: the reference for what a stream
// decoder may have emitted after k bytes.
func runeBoundary(s string, k int) int {
	last := 0
	for i := range s {
		if i > k {
			break
		}
		last = i
	}
	if k == len(s) {
		return k
	}
	return last
}

func TestStreamDecoderEveryByte(t *testing.T) {
	// Byte tokens: the split falls at every byte of every sample.
	for _, s := range samples {
		d := NewStreamDecoder(Byte{})
		var out strings.Builder
		for k := 0; k < len(s); k++ {
			piece, err := d.Next(int32(s[k]))
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(piece) {
				t.Fatalf("%q: after byte %d the decoder emitted invalid UTF-8 %q", s, k, piece)
			}
			out.WriteString(piece)
			if want := s[:runeBoundary(s, k+1)]; out.String() != want {
				t.Fatalf("%q: after %d bytes emitted %q, want %q", s, k+1, out.String(), want)
			}
		}
		if rest := d.Flush(); rest != "" {
			t.Fatalf("%q: Flush after a complete text = %q", s, rest)
		}
	}
	// Invalid and truncated input: nothing is lost, nothing panics.
	for _, s := range []string{"a\xffb", "\x80\x80", "中\xe4\xb8", "\xf0\x9f\x90", "\xe4\xb8a"} {
		d := NewStreamDecoder(Byte{})
		var out strings.Builder
		for k := 0; k < len(s); k++ {
			piece, _ := d.Next(int32(s[k]))
			out.WriteString(piece)
		}
		out.WriteString(d.Flush())
		if out.String() != s {
			t.Fatalf("stream of %q gave %q", s, out.String())
		}
	}
	// An invalid id is an error and leaves the decoder's state alone.
	d := NewStreamDecoder(Byte{})
	d.Next(0xe4)
	if _, err := d.Next(300); err == nil {
		t.Fatal("Next(300) succeeded")
	}
	d.Next(0xb8)
	if got, _ := d.Next(0xad); got != "中" {
		t.Fatalf("after a rejected id the stream gave %q, want 中", got)
	}
}

func TestStreamDecoderTokenizers(t *testing.T) {
	// GPT-2 splits Chinese and emoji inside their UTF-8 sequences; the
	// stream must emit only valid UTF-8 and add up to Decode.
	for _, tok := range allTokenizers(t) {
		partial := 0 // tokens that end inside a UTF-8 sequence
		for _, s := range samples {
			ids, _ := tok.Encode(s)
			for _, id := range ids {
				if b, _ := tok.AppendToken(nil, id); !utf8.Valid(b) {
					partial++
				}
			}
			d := NewStreamDecoder(tok)
			var out strings.Builder
			for _, id := range ids {
				piece, err := d.Next(id)
				if err != nil {
					t.Fatal(err)
				}
				if !utf8.ValidString(piece) {
					t.Fatalf("%s: %q: emitted invalid UTF-8 %q", tok.Name(), s, piece)
				}
				out.WriteString(piece)
			}
			out.WriteString(d.Flush())
			if out.String() != s {
				t.Fatalf("%s: stream of %q gave %q", tok.Name(), s, out.String())
			}
		}
		if tok.Name() == "gpt2" && partial == 0 {
			t.Fatal("no GPT-2 token of the samples ends inside a UTF-8 sequence: the test would not exercise holding back")
		}
	}
}

func BenchmarkTokenize(b *testing.B) {
	text, err := DefaultCorpus()
	if err != nil {
		b.Fatal(err)
	}
	char, err := CharFromText(text)
	if err != nil {
		b.Fatal(err)
	}
	for _, tok := range []Tokenizer{Byte{}, char, NewGPT2()} {
		b.Run(tok.Name(), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Encode(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
