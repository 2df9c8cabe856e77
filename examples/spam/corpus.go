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
	"math"
	"math/rand/v2"
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
// family of each token (famWord, famPair, famGram), the number of real
// tokens of each row, and the labels (1 spam).
type tokens struct {
	ids    []int32
	fam    []uint8
	count  []int
	labels []int32
	T      int
	bow    [][]int32 // per message, the wide part's columns it hits (its input); nil without one
	// bowScale, when not nil, is the value of each wide column (nbScale);
	// otherwise the wide input is binary.
	bowScale []float32
	// The word sequences of the convolutional model (setSeq; L is 0
	// without them): rows of exactly L word ids in the order of the text
	// (0 pads), and the number of real words of each row.
	seq    []int32
	seqLen []int
	L      int
}

// The token families: words, pairs of consecutive words, byte 4-grams.
const (
	famWord uint8 = iota
	famPair
	famGram
	families
)

// tokenize maps each message to hashed tokens in [1, buckets) (FNV-1a):
// each word and each pair of consecutive words, interleaved word, pair,
// word, …, then every byte 4-gram of the lowercased text (they see what
// words miss: HTML tags, quoted-printable "=3d", URLs), cut at T tokens.
// With unique, a token id already in the message is not repeated (binary
// features, as the baseline's), so more distinct tokens fit in T. With
// triples, each run of three consecutive words is a token too (of the
// pairs' family). With words (a vocabulary of training words; nil for
// none) a word of it has its own id 1+column, free of hash collisions, and
// everything else is hashed into [1+len(words), buckets). Id 0 is the padding, which the pooling
// weights ignore.
func tokenize(msgs []message, buckets, T int, unique, triples bool, words map[string]int) *tokens {
	tk := &tokens{ids: make([]int32, len(msgs)*T), fam: make([]uint8, len(msgs)*T), count: make([]int, len(msgs)), labels: make([]int32, len(msgs)), T: T}
	h := fnv.New32a()
	hash := func(parts ...string) int32 {
		h.Reset()
		for i, p := range parts {
			if i > 0 {
				h.Write([]byte{0})
			}
			io.WriteString(h, p)
		}
		return int32(1 + len(words) + int(h.Sum32()%uint32(buckets-1-len(words))))
	}
	seen := map[int32]bool{}
	for i, m := range msgs {
		row, fam := tk.ids[i*T:(i+1)*T], tk.fam[i*T:(i+1)*T]
		n, prev, prev2 := 0, "", ""
		clear(seen)
		add := func(id int32, f uint8) {
			if n < T && !(unique && seen[id]) {
				row[n], fam[n] = id, f
				n++
				if unique {
					seen[id] = true
				}
			}
		}
		forWords(m.text(), func(w string) {
			if j, ok := words[w]; ok {
				add(int32(1+j), famWord)
			} else {
				add(hash(w), famWord)
			}
			if prev != "" {
				add(hash(prev, w), famPair)
			}
			if triples && prev2 != "" {
				add(hash(prev2, prev, w), famPair)
			}
			prev2, prev = prev, w
		})
		txt := strings.ToLower(m.text())
		for j := 0; j+4 <= len(txt); j++ {
			add(hash("\x01", txt[j:j+4]), famGram)
		}
		tk.count[i] = n
		if m.Spam {
			tk.labels[i] = 1
		}
	}
	return tk
}

// setSeq gives tk (the tokenisation of msgs, in the same order) the word
// sequences of the convolutional model: the first L words of each message
// (forWords: subject, then body) in their order, each with the id tokenize
// gives it as a word token — 1+column for a word of words, otherwise
// hashed (FNV-1a) into [1+len(words), buckets) — and 0 after the last
// word. Unlike the bag's tokens, the sequences are not filtered by
// dropRare: removing a word would join its neighbours into a false pair.
func (tk *tokens) setSeq(msgs []message, buckets, L int, words map[string]int) {
	tk.seq, tk.seqLen, tk.L = make([]int32, len(msgs)*L), make([]int, len(msgs)), L
	h := fnv.New32a()
	for i, m := range msgs {
		row, n := tk.seq[i*L:(i+1)*L], 0
		forWords(m.text(), func(w string) {
			if n == L {
				return
			}
			if j, ok := words[w]; ok {
				row[n] = int32(1 + j)
			} else {
				h.Reset()
				io.WriteString(h, w)
				row[n] = int32(1 + len(words) + int(h.Sum32()%uint32(buckets-1-len(words))))
			}
			n++
		})
		tk.seqLen[i] = n
	}
}

// rankWords returns the words of msgs ordered by the number of messages
// they occur in, most first (ties broken alphabetically, so the order is
// fixed by the split).
func rankWords(msgs []message) []string { return rankBy(msgs, forWords) }

// vocabOf maps the first size words of ranked (all when fewer) to their
// columns.
func vocabOf(ranked []string, size int) map[string]int {
	ranked = ranked[:min(size, len(ranked))]
	vocab := make(map[string]int, len(ranked))
	for i, w := range ranked {
		vocab[w] = i
	}
	return vocab
}

// pick returns a copy of the rows idx of tk (dropRare edits rows in place,
// so every split and setting gets its own).
func (tk *tokens) pick(idx []int) *tokens {
	T, L := tk.T, tk.L
	out := &tokens{ids: make([]int32, len(idx)*T), fam: make([]uint8, len(idx)*T), count: make([]int, len(idx)), labels: make([]int32, len(idx)), T: T}
	if L > 0 {
		out.seq, out.seqLen, out.L = make([]int32, len(idx)*L), make([]int, len(idx)), L
	}
	for r, s := range idx {
		copy(out.ids[r*T:(r+1)*T], tk.ids[s*T:(s+1)*T])
		copy(out.fam[r*T:(r+1)*T], tk.fam[s*T:(s+1)*T])
		out.count[r], out.labels[r] = tk.count[s], tk.labels[s]
		if L > 0 {
			copy(out.seq[r*L:(r+1)*L], tk.seq[s*L:(s+1)*L])
			out.seqLen[r] = tk.seqLen[s]
		}
	}
	return out
}

// split is the stratified three-way split fixed by seed. Each class is
// shuffled by its own PCG stream (seed, class); its first round(testFrac·n)
// messages are the test split, the next round(valFrac·n) the validation
// split, the rest the training split. The test split therefore depends on
// the seed and testFrac only: the same messages whatever -val-frac.
func split(msgs []message, testFrac, valFrac float64, seed uint64) (trainIdx, valIdx, testIdx []int) {
	for class, want := range []bool{false, true} {
		var idx []int
		for i, m := range msgs {
			if m.Spam == want {
				idx = append(idx, i)
			}
		}
		r := rand.New(rand.NewPCG(seed, uint64(class)))
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		kt := int(math.Round(testFrac * float64(len(idx))))
		kv := int(math.Round(valFrac * float64(len(idx))))
		kv = min(kv, len(idx)-kt)
		testIdx = append(testIdx, idx[:kt]...)
		valIdx = append(valIdx, idx[kt:kt+kv]...)
		trainIdx = append(trainIdx, idx[kt+kv:]...)
	}
	return trainIdx, valIdx, testIdx
}

func pickMsgs(msgs []message, idx []int) []message {
	out := make([]message, len(idx))
	for i, j := range idx {
		out[i] = msgs[j]
	}
	return out
}

func countSpam(msgs []message) int {
	n := 0
	for _, m := range msgs {
		if m.Spam {
			n++
		}
	}
	return n
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
			row, fam := tk.ids[i*tk.T:(i+1)*tk.T], tk.fam[i*tk.T:(i+1)*tk.T]
			n := 0
			for t, id := range row[:tk.count[i]] {
				if df[id] >= minCount {
					row[n], fam[n] = id, fam[t]
					n++
				}
			}
			clear(row[n:])
			clear(fam[n:])
			tk.count[i] = n
		}
	}
}

// forPairs calls fn for every pair of consecutive words of s ("a b").
func forPairs(s string, fn func(string)) {
	prev := ""
	forWords(s, func(w string) {
		if prev != "" {
			fn(prev + " " + w)
		}
		prev = w
	})
}

// forGrams calls fn for every byte 4-gram of the lowercased s.
func forGrams(s string, fn func(string)) {
	txt := strings.ToLower(s)
	for j := 0; j+4 <= len(txt); j++ {
		fn(txt[j : j+4])
	}
}

// rankBy is rankWords for the features that each calls fn with.
func rankBy(msgs []message, each func(string, func(string))) []string {
	df := map[string]int{}
	seen := map[string]bool{}
	for _, m := range msgs {
		clear(seen)
		each(m.text(), func(f string) {
			if !seen[f] {
				seen[f] = true
				df[f]++
			}
		})
	}
	feats := make([]string, 0, len(df))
	for f := range df {
		feats = append(feats, f)
	}
	sort.Slice(feats, func(i, j int) bool {
		if df[feats[i]] != df[feats[j]] {
			return df[feats[i]] > df[feats[j]]
		}
		return feats[i] < feats[j]
	})
	return feats
}

// wideVocab is the wide part's vocabulary: the columns of its words, word
// pairs and byte 4-grams (each family its own map, so the 4-gram "free"
// is not the word "free"), words first, then pairs, then 4-grams.
type wideVocab struct {
	cols [families]map[string]int
}

// newWideVocab takes the c.wide most frequent training words (ranked, from
// rankWords), the c.widePairs most frequent word pairs and the c.wideGrams
// most frequent byte 4-grams of the training messages trMsgs.
func newWideVocab(c modelCfg, ranked []string, trMsgs []message) *wideVocab {
	wv := &wideVocab{}
	wv.cols[famWord] = vocabOf(ranked, c.wide)
	off := c.wide
	for _, f := range []struct {
		fam  uint8
		n    int
		each func(string, func(string))
	}{{famPair, c.widePairs, forPairs}, {famGram, c.wideGrams, forGrams}} {
		if f.n == 0 {
			continue
		}
		m := vocabOf(rankBy(trMsgs, f.each), f.n)
		for k, j := range m {
			m[k] = off + j
		}
		wv.cols[f.fam] = m
		off += f.n
	}
	return wv
}

// setBow sets tk.bow from msgs (the same messages, in the same order):
// the distinct columns of wv that each message's features hit.
func (tk *tokens) setBow(msgs []message, wv *wideVocab) {
	tk.bow = make([][]int32, len(msgs))
	seen := map[int]bool{}
	for i, m := range msgs {
		clear(seen)
		for fam, each := range []func(string, func(string)){forWords, forPairs, forGrams} {
			cols := wv.cols[fam]
			if len(cols) == 0 {
				continue
			}
			each(m.text(), func(f string) {
				if j, ok := cols[f]; ok && !seen[j] {
					seen[j] = true
					tk.bow[i] = append(tk.bow[i], int32(j))
				}
			})
		}
	}
}

// nbScale returns the log-count ratios of the wide columns on the training
// set tk (NBSVM, Wang & Manning 2012): r_j = log((p_j/‖p‖₁)/(q_j/‖q‖₁))
// with p_j = 1 + the spam messages with feature j, q_j = 1 + the ham
// messages with it. Scaling the binary features by r_j gives the telling
// features a head start over the weight decay.
func nbScale(tk *tokens, cols int) []float32 {
	p, q := make([]float64, cols), make([]float64, cols)
	for j := range p {
		p[j], q[j] = 1, 1
	}
	for i, row := range tk.bow {
		for _, j := range row {
			if tk.labels[i] == 1 {
				p[j]++
			} else {
				q[j]++
			}
		}
	}
	var sp, sq float64
	for j := range p {
		sp, sq = sp+p[j], sq+q[j]
	}
	r := make([]float32, cols)
	for j := range r {
		r[j] = float32(math.Log((p[j] / sp) / (q[j] / sq)))
	}
	return r
}

// setWide gives the training set trTok and the other sets their wide
// input: the bag of features of newWideVocab and, with c.nb, the training
// split's log-count ratios as feature values. sets[i] holds the messages
// of toks[i].
func setWide(c modelCfg, ranked []string, trMsgs []message, trTok *tokens, sets [][]message, toks ...*tokens) {
	if c.wideDim() == 0 {
		return
	}
	wv := newWideVocab(c, ranked, trMsgs)
	trTok.setBow(trMsgs, wv)
	var scale []float32
	if c.nb {
		scale = nbScale(trTok, c.wideDim())
	}
	trTok.bowScale = scale
	for i, tk := range toks {
		tk.setBow(sets[i], wv)
		tk.bowScale = scale
	}
}
