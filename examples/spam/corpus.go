package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed testdata/spamassassin.jsonl.gz
var corpusGz []byte

// message is one line of the corpus file (see prepare/main.go).
type message struct {
	Group   string `json:"group"`
	Spam    bool   `json:"spam"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

func (m message) text() string { return m.Subject + "\n" + m.Body }

// loadCorpus reads the gzipped JSON-lines corpus from path, or the embedded
// copy when path is empty.
func loadCorpus(path string) ([]message, error) {
	var r io.Reader = bytes.NewReader(corpusGz)
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	var msgs []message
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("corpus line %d: %w", line, err)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("corpus: no messages")
	}
	return msgs, nil
}

// forWords calls fn for every word of s in order: a run of letters or
// digits, lowercased (at most 30 bytes long; longer runs, base64 and the
// like, are cut), or one of the punctuation marks that spam overuses
// (! $ % and €).
func forWords(s string, fn func(string)) {
	var buf [32]byte
	n := 0
	flush := func() {
		if n > 0 {
			fn(string(buf[:n]))
			n = 0
		}
	}
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			r = unicode.ToLower(r)
			if n+utf8.RuneLen(r) <= 30 {
				n += utf8.EncodeRune(buf[n:], r)
			}
		case r == '!' || r == '$' || r == '%' || r == '€':
			flush()
			fn(string(r))
		default:
			flush()
		}
	}
	flush()
}

// tokens is a tokenised set: rows of exactly T token ids (0 pads), the
// number of real tokens of each row, and the labels (1 spam).
type tokens struct {
	ids    []int32
	count  []int
	labels []int32
	T      int
}

// tokenize maps each message to hashed tokens in [1, buckets) (FNV-1a):
// each word and each pair of consecutive words, interleaved word, pair,
// word, …, then every byte 4-gram of the lowercased text (they see what
// words miss: HTML tags, quoted-printable "=3d", URLs), cut at T tokens.
// Id 0 is the padding, which the pooling weights ignore.
func tokenize(msgs []message, buckets, T int) *tokens {
	tk := &tokens{ids: make([]int32, len(msgs)*T), count: make([]int, len(msgs)), labels: make([]int32, len(msgs)), T: T}
	h := fnv.New32a()
	hash := func(parts ...string) int32 {
		h.Reset()
		for i, p := range parts {
			if i > 0 {
				h.Write([]byte{0})
			}
			io.WriteString(h, p)
		}
		return int32(1 + h.Sum32()%uint32(buckets-1))
	}
	for i, m := range msgs {
		row := tk.ids[i*T : (i+1)*T]
		n, prev := 0, ""
		add := func(id int32) {
			if n < T {
				row[n] = id
				n++
			}
		}
		forWords(m.text(), func(w string) {
			add(hash(w))
			if prev != "" {
				add(hash(prev, w))
			}
			prev = w
		})
		txt := strings.ToLower(m.text())
		for j := 0; j+4 <= len(txt); j++ {
			add(hash("\x01", txt[j:j+4]))
		}
		tk.count[i] = n
		if m.Spam {
			tk.labels[i] = 1
		}
	}
	return tk
}

// buildVocab returns the size words that occur in the most training
// messages (ties broken alphabetically, so the vocabulary is fixed by the
// split), each mapped to its column.
func buildVocab(msgs []message, size int) map[string]int {
	df := map[string]int{}
	for _, m := range msgs {
		seen := map[string]bool{}
		forWords(m.text(), func(w string) {
			if !seen[w] {
				seen[w] = true
				df[w]++
			}
		})
	}
	words := make([]string, 0, len(df))
	for w := range df {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if df[words[i]] != df[words[j]] {
			return df[words[i]] > df[words[j]]
		}
		return words[i] < words[j]
	})
	if len(words) > size {
		words = words[:size]
	}
	vocab := make(map[string]int, len(words))
	for i, w := range words {
		vocab[w] = i
	}
	return vocab
}

// dropRare removes from every row of the sets the token ids that occur in
// fewer than minCount messages of train (fastText's -minCount): a token
// seen once can only be memorised, not learnt. The counts come from the
// training set alone, so the test set does not leak into the features.
func dropRare(train *tokens, minCount int, sets ...*tokens) {
	df := map[int32]int{}
	for i := range train.count {
		row := train.ids[i*train.T : i*train.T+train.count[i]]
		seen := map[int32]bool{}
		for _, id := range row {
			if !seen[id] {
				seen[id] = true
				df[id]++
			}
		}
	}
	for _, tk := range append([]*tokens{train}, sets...) {
		for i := range tk.count {
			row := tk.ids[i*tk.T : (i+1)*tk.T]
			n := 0
			for _, id := range row[:tk.count[i]] {
				if df[id] >= minCount {
					row[n] = id
					n++
				}
			}
			clear(row[n:])
			tk.count[i] = n
		}
	}
}
