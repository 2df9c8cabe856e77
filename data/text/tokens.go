package text

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Options configure Open.
type Options struct {
	// CacheDir is where token files are kept. Empty means
	// os.UserCacheDir()/kiln/tokens, or os.TempDir()/kiln-tokens when
	// there is no user cache directory or it cannot be written.
	CacheDir string
	// Separator is the text tokenised between two files of a folder;
	// empty means DefaultSeparator ("\n\n").
	Separator string
	// NoMmap reads the token file into memory instead of mapping it.
	NoMmap bool
}

// The token file: a 64-byte header, then the tokens, little-endian, 2 or 4
// bytes each.
//
//	0  "KILNTOK1"
//	8  uint32 bytes per token (2 or 4)
//	12 uint32 0
//	16 uint64 number of tokens
//	24 [32]byte SHA-256 of what the tokens were made from (see cacheKey)
//	56 8 zero bytes
const (
	headerSize  = 64
	fileMagic   = "KILNTOK1"
	fileVersion = "kiln token file 1"
)

// Tokens is a corpus tokenised once into a token file and memory-mapped
// (or read into memory where mapping is unavailable or Options.NoMmap is
// set). Close releases the mapping.
type Tokens struct {
	name      string // the corpus, for messages
	tok       Tokenizer
	width     int    // bytes per token
	n         int    // tokens
	data      []byte // the token bytes (after the header)
	file      []byte // the whole file as mapped or read
	mapped    bool
	cachePath string
}

// Open tokenises the corpus at path with tok, or reuses the token file an
// earlier call made, and maps it. path is a text file, or a folder whose
// .txt files (found recursively) are joined in lexical order of their
// paths with Options.Separator between them. Each file is tokenised on its
// own, in chunks, so neither the corpus nor its tokens need fit in memory.
//
// The token file is named after the corpus and a SHA-256 of the
// tokeniser, the separator and each file's path, size and modification
// time; a change to any of them makes a new file.
func Open(path string, tok Tokenizer, opt Options) (*Tokens, error) {
	if tok == nil {
		return nil, fmt.Errorf("text: Open %s: nil tokenizer", path)
	}
	srcs, err := listSources(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("text: corpus: %w", err)
	}
	return openSources(abs, path, srcs, tok, opt)
}

// OpenText is Open for a text held in memory; name stands for it in
// messages and in the token file's name.
func OpenText(name, text string, tok Tokenizer, opt Options) (*Tokens, error) {
	if tok == nil {
		return nil, fmt.Errorf("text: OpenText %s: nil tokenizer", name)
	}
	return openSources(name, name, []source{{name: name, text: text}}, tok, opt)
}

// OpenDefault is Open for the embedded default corpus (DefaultCorpus).
func OpenDefault(tok Tokenizer, opt Options) (*Tokens, error) {
	s, err := DefaultCorpus()
	if err != nil {
		return nil, err
	}
	return OpenText(DefaultCorpusName, s, tok, opt)
}

// tokenWidth is the bytes per token for a vocabulary of n.
func tokenWidth(n int) int {
	if n <= 1<<16 {
		return 2
	}
	return 4
}

// cacheKey hashes everything the tokens depend on.
func cacheKey(id string, srcs []source, tok Tokenizer, sep string) ([32]byte, error) {
	spec, err := tok.MarshalJSON()
	if err != nil {
		return [32]byte{}, fmt.Errorf("text: tokenizer %s: %v", tok.Name(), err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%d\x00", fileVersion, spec, sep, id, len(srcs))
	for _, s := range srcs {
		if s.path != "" {
			fmt.Fprintf(h, "file\x00%s\x00%d\x00%d\x00", s.path, s.info.Size(), s.info.ModTime().UnixNano())
		} else {
			sum := sha256.Sum256([]byte(s.text))
			fmt.Fprintf(h, "text\x00%x\x00", sum)
		}
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, nil
}

// cacheDirs lists the folders to try for the token file.
func cacheDirs(opt Options) []string {
	if opt.CacheDir != "" {
		return []string{opt.CacheDir}
	}
	var dirs []string
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "kiln", "tokens"))
	}
	return append(dirs, filepath.Join(os.TempDir(), "kiln-tokens"))
}

// fileStem makes a short file-name-safe stem from a corpus name.
func fileStem(name string) string {
	base := filepath.Base(name)
	var b strings.Builder
	for _, c := range base {
		if b.Len() >= 40 {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func openSources(id, name string, srcs []source, tok Tokenizer, opt Options) (*Tokens, error) {
	sep := opt.separator()
	key, err := cacheKey(id, srcs, tok, sep)
	if err != nil {
		return nil, err
	}
	width := tokenWidth(tok.VocabSize())
	fname := fmt.Sprintf("%s.%s-%s.tok", fileStem(name), tok.Name(), hex.EncodeToString(key[:8]))
	var errs []string
	for _, dir := range cacheDirs(opt) {
		p := filepath.Join(dir, fname)
		if t, err := openTokenFile(p, name, tok, key, width, opt.NoMmap); err == nil {
			return t, nil
		}
		if err := writeTokenFile(p, srcs, tok, sep, key, width); err != nil {
			if isCorpusError(err) {
				return nil, err
			}
			errs = append(errs, err.Error())
			continue
		}
		return openTokenFile(p, name, tok, key, width, opt.NoMmap)
	}
	return nil, fmt.Errorf("text: no cache folder for the tokens of %s could be written: %s", name, strings.Join(errs, "; "))
}

// corpusError marks a failure of the corpus itself (unreadable, empty,
// not encodable), which another cache folder cannot fix.
type corpusError struct{ err error }

func (e *corpusError) Error() string { return e.err.Error() }
func (e *corpusError) Unwrap() error { return e.err }

func isCorpusError(err error) bool {
	_, ok := err.(*corpusError)
	return ok
}

// writeTokenFile tokenises srcs into the token file at p, atomically (a
// temporary file in the same folder, renamed into place).
func writeTokenFile(p string, srcs []source, tok Tokenizer, sep string, key [32]byte, width int) (err error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("text: token cache: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*.tok")
	if err != nil {
		return fmt.Errorf("text: token cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if _, err := w.Write(make([]byte, headerSize)); err != nil {
		return fmt.Errorf("text: token cache %s: %w", f.Name(), err)
	}
	vocab := tok.VocabSize()
	var n uint64
	var scratch [4]byte
	var werr error
	emit := func(ids []int32) error {
		for _, id := range ids {
			if id < 0 || int(id) >= vocab {
				return &corpusError{fmt.Errorf("text: tokenizer %s produced id %d outside [0, %d)", tok.Name(), id, vocab)}
			}
			if width == 2 {
				binary.LittleEndian.PutUint16(scratch[:], uint16(id))
			} else {
				binary.LittleEndian.PutUint32(scratch[:], uint32(id))
			}
			if _, werr = w.Write(scratch[:width]); werr != nil {
				return fmt.Errorf("text: token cache %s: %w", f.Name(), werr)
			}
		}
		n += uint64(len(ids))
		return nil
	}
	sepIDs, err := tok.Encode(sep)
	if err != nil && len(srcs) > 1 {
		return &corpusError{fmt.Errorf("text: the separator %q between corpus files: %w", sep, err)}
	}
	for i := range srcs {
		if i > 0 {
			if err := emit(sepIDs); err != nil {
				return err
			}
		}
		if err := encodeSource(&srcs[i], tok, emit); err != nil {
			if werr != nil {
				return err
			}
			return &corpusError{err}
		}
	}
	if n == 0 {
		return &corpusError{fmt.Errorf("text: corpus %s is empty: it has no tokens, and a window of context c needs at least c+1", corpusName(srcs))}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("text: token cache %s: %w", f.Name(), err)
	}
	var hdr [headerSize]byte
	copy(hdr[:], fileMagic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(width))
	binary.LittleEndian.PutUint64(hdr[16:], n)
	copy(hdr[24:56], key[:])
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("text: token cache %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("text: token cache %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("text: token cache %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("text: token cache: %w", err)
	}
	return nil
}

// corpusName names a corpus by its first source (and how many follow).
func corpusName(srcs []source) string {
	if len(srcs) == 1 {
		return srcs[0].name
	}
	return fmt.Sprintf("%s (and %d more files)", srcs[0].name, len(srcs)-1)
}

// openTokenFile maps (or reads) the token file at p and checks its header
// against key and width.
func openTokenFile(p, name string, tok Tokenizer, key [32]byte, width int, noMmap bool) (*Tokens, error) {
	var file []byte
	var mapped bool
	var err error
	if !noMmap {
		file, mapped, err = mapFile(p)
	}
	if !mapped {
		file, err = os.ReadFile(p)
	}
	if err != nil {
		return nil, fmt.Errorf("text: token file: %w", err)
	}
	t := &Tokens{name: name, tok: tok, width: width, file: file, mapped: mapped, cachePath: p}
	if err := t.checkHeader(key); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// checkHeader validates the token file and sets n and data.
func (t *Tokens) checkHeader(key [32]byte) error {
	f := t.file
	if len(f) < headerSize || string(f[:8]) != fileMagic {
		return fmt.Errorf("text: token file %s: not a kiln token file", t.cachePath)
	}
	if w := int(binary.LittleEndian.Uint32(f[8:])); w != t.width {
		return fmt.Errorf("text: token file %s: %d bytes per token, want %d", t.cachePath, w, t.width)
	}
	if !bytes.Equal(f[24:56], key[:]) {
		return fmt.Errorf("text: token file %s: made from another corpus or tokenizer", t.cachePath)
	}
	n := binary.LittleEndian.Uint64(f[16:])
	if n == 0 || n > uint64(len(f)-headerSize)/uint64(t.width) || uint64(len(f)-headerSize) != n*uint64(t.width) {
		return fmt.Errorf("text: token file %s: header says %d tokens of %d bytes, the file holds %d bytes after the header", t.cachePath, n, t.width, len(f)-headerSize)
	}
	t.n = int(n)
	t.data = f[headerSize:]
	return nil
}

// Close releases the mapping (or the memory) of the tokens. The Tokens,
// and every Span and Sampler over them, must not be used afterwards.
func (t *Tokens) Close() error {
	f := t.file
	t.file, t.data, t.n = nil, nil, 0
	if t.mapped && f != nil {
		t.mapped = false
		return unmapFile(f)
	}
	return nil
}

// Len returns the number of tokens.
func (t *Tokens) Len() int { return t.n }

// Name returns the corpus the tokens come from (a path or a name).
func (t *Tokens) Name() string { return t.name }

// Tokenizer returns the tokeniser that made the tokens.
func (t *Tokens) Tokenizer() Tokenizer { return t.tok }

// CachePath returns the path of the token file.
func (t *Tokens) CachePath() string { return t.cachePath }

// Mapped reports whether the token file is memory-mapped (rather than read
// into memory).
func (t *Tokens) Mapped() bool { return t.mapped }

// BytesPerToken returns 2 (uint16 tokens) or 4 (uint32).
func (t *Tokens) BytesPerToken() int { return t.width }

// At returns token i; it panics if i is outside [0, Len()), as a slice
// index does.
func (t *Tokens) At(i int) int32 {
	if uint(i) >= uint(t.n) {
		panic(fmt.Sprintf("text: token index %d out of range [0, %d)", i, t.n))
	}
	if t.width == 2 {
		return int32(binary.LittleEndian.Uint16(t.data[2*i:]))
	}
	return int32(binary.LittleEndian.Uint32(t.data[4*i:]))
}

// Read copies tokens [off, off+len(dst)) into dst.
func (t *Tokens) Read(off int, dst []int32) error {
	if off < 0 || off+len(dst) > t.n {
		return fmt.Errorf("text: %s: tokens [%d, %d) outside [0, %d)", t.name, off, off+len(dst), t.n)
	}
	t.copyTo(off, dst)
	return nil
}

// copyTo is Read without the check.
func (t *Tokens) copyTo(off int, dst []int32) {
	if t.width == 2 {
		src := t.data[2*off : 2*(off+len(dst))]
		for j := range dst {
			dst[j] = int32(binary.LittleEndian.Uint16(src[2*j:]))
		}
		return
	}
	src := t.data[4*off : 4*(off+len(dst))]
	for j := range dst {
		dst[j] = int32(binary.LittleEndian.Uint32(src[4*j:]))
	}
}

// All returns the span of every token.
func (t *Tokens) All() Span { return Span{t: t, lo: 0, hi: t.n, name: "tokens"} }

// Split cuts the tokens by position: the first part for training, the
// last valFrac (rounded to a whole token) for validation, so no window of
// one overlaps the other. valFrac must be in [0, 1); 0 gives an empty
// validation span.
func (t *Tokens) Split(valFrac float64) (train, val Span, err error) {
	if !(valFrac >= 0 && valFrac < 1) {
		return Span{}, Span{}, fmt.Errorf("text: %s: validation fraction %v, want 0 <= f < 1", t.name, valFrac)
	}
	nv := int(math.Round(float64(t.n) * valFrac))
	cut := t.n - nv
	if cut <= 0 {
		return Span{}, Span{}, fmt.Errorf("text: %s: %d tokens leave none for training with a validation fraction of %v", t.name, t.n, valFrac)
	}
	return Span{t: t, lo: 0, hi: cut, name: "training split"}, Span{t: t, lo: cut, hi: t.n, name: "validation split"}, nil
}

// Span is a contiguous range of a Tokens.
type Span struct {
	t      *Tokens
	lo, hi int
	name   string
}

// Len returns the number of tokens in the span.
func (s Span) Len() int { return s.hi - s.lo }

// Start returns the position of the span's first token in the whole
// token stream.
func (s Span) Start() int { return s.lo }

// Tokens returns what the span is a part of.
func (s Span) Tokens() *Tokens { return s.t }

// String names the span: "training split of moby.txt [0, 1000)".
func (s Span) String() string {
	if s.t == nil {
		return "empty span"
	}
	return fmt.Sprintf("%s of %s [%d, %d)", s.name, s.t.name, s.lo, s.hi)
}

// Window fills x with the len(x) tokens at offset off of the span and y
// with the tokens one further on (the next-token targets): x[j] =
// token[off+j], y[j] = token[off+j+1]. It allocates nothing; use it to
// walk a validation span in order.
func (s Span) Window(off int, x, y []int32) error {
	if s.t == nil || s.t.data == nil {
		return fmt.Errorf("text: Window on an empty span or closed tokens")
	}
	if len(x) != len(y) || len(x) == 0 {
		return fmt.Errorf("text: %v: Window: len(x) = %d, len(y) = %d, want equal and > 0", s, len(x), len(y))
	}
	if off < 0 || off+len(x)+1 > s.Len() {
		return fmt.Errorf("text: %v: Window at %d of %d+1 tokens is outside the span's %d", s, off, len(x), s.Len())
	}
	s.t.copyTo(s.lo+off, x)
	s.t.copyTo(s.lo+off+1, y)
	return nil
}
