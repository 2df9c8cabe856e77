package text

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Char is the character-level tokeniser: its vocabulary is a sorted set of
// runes (usually every rune of a corpus, from CharFromText or ScanChars),
// and token i is the i-th of them. Encoding a rune outside the vocabulary
// is an error that names the rune and its byte offset; there is no silent
// fallback. Invalid UTF-8 bytes read as U+FFFD (utf8.RuneError), so they
// encode only when U+FFFD is in the vocabulary, and decode as U+FFFD.
type Char struct {
	runes []rune         // id → rune, sorted ascending
	small [256]int32     // rune → id for runes below 256 (-1: absent)
	large map[rune]int32 // rune → id for the rest
}

// NewChar returns the Char tokeniser over runes, which must be sorted
// ascending, without repeats, and valid code points (as Load and
// MarshalJSON keep them).
func NewChar(runes []rune) (*Char, error) {
	if len(runes) == 0 {
		return nil, fmt.Errorf("text: char tokenizer: empty vocabulary")
	}
	c := &Char{runes: slices.Clone(runes), large: map[rune]int32{}}
	for i := range c.small {
		c.small[i] = -1
	}
	for i, r := range c.runes {
		if !utf8.ValidRune(r) {
			return nil, fmt.Errorf("text: char tokenizer: vocabulary entry %d is %#x, not a valid rune", i, r)
		}
		if i > 0 && r <= c.runes[i-1] {
			return nil, fmt.Errorf("text: char tokenizer: vocabulary is not sorted without repeats at entry %d (%q after %q)", i, r, c.runes[i-1])
		}
		if r < 256 {
			c.small[r] = int32(i)
		} else {
			c.large[r] = int32(i)
		}
	}
	return c, nil
}

// CharFromText returns the Char tokeniser whose vocabulary is the sorted
// set of runes of s.
func CharFromText(s string) (*Char, error) {
	var set runeSet
	set.add(s)
	return set.tokenizer("the text")
}

// runeSet collects the distinct runes of a corpus read in pieces.
type runeSet struct {
	ascii [256]bool
	other map[rune]bool
}

// add records the runes of s (invalid bytes as U+FFFD).
func (r *runeSet) add(s string) {
	for _, c := range s {
		if c < 256 {
			r.ascii[c] = true
			continue
		}
		if r.other == nil {
			r.other = map[rune]bool{}
		}
		r.other[c] = true
	}
}

// tokenizer returns the Char tokeniser of the runes seen; what names the
// corpus in the error for an empty one.
func (r *runeSet) tokenizer(what string) (*Char, error) {
	var runes []rune
	for c, ok := range r.ascii {
		if ok {
			runes = append(runes, rune(c))
		}
	}
	for c := range r.other {
		runes = append(runes, c)
	}
	if len(runes) == 0 {
		return nil, fmt.Errorf("text: char tokenizer from %s: the corpus is empty, so the vocabulary would be too", what)
	}
	slices.Sort(runes)
	return NewChar(runes)
}

// Name returns "char".
func (*Char) Name() string { return "char" }

// VocabSize returns the number of runes in the vocabulary.
func (c *Char) VocabSize() int { return len(c.runes) }

// String describes the tokeniser.
func (c *Char) String() string { return fmt.Sprintf("char (%d symbols)", len(c.runes)) }

// Runes returns a copy of the vocabulary, sorted.
func (c *Char) Runes() []rune { return slices.Clone(c.runes) }

// ID returns the token of rune r, and whether r is in the vocabulary.
func (c *Char) ID(r rune) (int32, bool) {
	if r >= 0 && r < 256 {
		id := c.small[r]
		return id, id >= 0
	}
	id, ok := c.large[r]
	return id, ok
}

// Encode returns one token per rune of s, or an error naming the first
// rune outside the vocabulary and its byte offset.
func (c *Char) Encode(s string) ([]int32, error) {
	return c.appendEncode(make([]int32, 0, len(s)), s)
}

func (c *Char) appendEncode(dst []int32, s string) ([]int32, error) {
	for i, r := range s {
		id, ok := c.ID(r)
		if !ok {
			if r == utf8.RuneError {
				if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
					return dst, fmt.Errorf("text: char tokenizer: invalid UTF-8 byte %#x at byte %d, and U+FFFD is not in the vocabulary of %d runes", s[i], i, len(c.runes))
				}
			}
			return dst, fmt.Errorf("text: char tokenizer: rune %q (%U) at byte %d is not in the vocabulary of %d runes", r, r, i, len(c.runes))
		}
		dst = append(dst, id)
	}
	return dst, nil
}

// Decode returns the runes ids stand for.
func (c *Char) Decode(ids []int32) (string, error) { return decodeAll(c, ids) }

// AppendToken appends the UTF-8 encoding of rune id to dst.
func (c *Char) AppendToken(dst []byte, id int32) ([]byte, error) {
	if err := checkID("char", id, len(c.runes)); err != nil {
		return dst, err
	}
	return utf8.AppendRune(dst, c.runes[id]), nil
}

// MarshalJSON returns {"kind":"char","vocab":"<the sorted runes>"}.
func (c *Char) MarshalJSON() ([]byte, error) {
	return json.Marshal(spec{Kind: "char", Vocab: string(c.runes)})
}
