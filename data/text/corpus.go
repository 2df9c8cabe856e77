package text

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

//go:embed mobydick.txt.gz
var mobyDickGz []byte

// DefaultCorpusName names the embedded corpus in messages and cache files.
const DefaultCorpusName = "embedded Moby-Dick"

var (
	defaultOnce sync.Once
	defaultText string
	defaultErr  error
)

// DefaultCorpus returns the embedded default corpus: the text of Herman
// Melville's Moby-Dick, chapters 1–135 (1,204,997 bytes of UTF-8, lines
// wrapped near 70 columns; public domain). It is decompressed once per
// process.
func DefaultCorpus() (string, error) {
	defaultOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(mobyDickGz))
		if err != nil {
			defaultErr = fmt.Errorf("text: %s: %v", DefaultCorpusName, err)
			return
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			defaultErr = fmt.Errorf("text: %s: %v", DefaultCorpusName, err)
			return
		}
		defaultText = string(b)
	})
	return defaultText, defaultErr
}

// source is one piece of a corpus: a file, or a text held in memory.
type source struct {
	name string // the path, or a name for a text in memory
	path string // "" for a text in memory
	text string
	info fs.FileInfo
}

// open returns a reader over the source.
func (s *source) open() (io.ReadCloser, error) {
	if s.path == "" {
		return io.NopCloser(strings.NewReader(s.text)), nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("text: corpus file: %w", err)
	}
	return f, nil
}

// listSources returns the files of the corpus at path: the file itself, or
// every .txt file under the folder (recursively, in lexical order of their
// paths, which is the order of filepath.WalkDir).
func listSources(path string) ([]source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("text: corpus: %w", err)
	}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("text: corpus %s is not a regular file or a folder", path)
		}
		return []source{{name: path, path: path, info: st}}, nil
	}
	var out []source
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("text: corpus folder: %w", err)
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".txt") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("text: corpus folder: %w", err)
		}
		if info.Mode().IsRegular() {
			out = append(out, source{name: p, path: p, info: info})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("text: corpus folder %s has no .txt files", path)
	}
	slices.SortFunc(out, func(a, b source) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

// DefaultSeparator is the text placed between the files of a folder.
const DefaultSeparator = "\n\n"

// separator returns the separator Options asks for.
func (o *Options) separator() string {
	if o.Separator == "" {
		return DefaultSeparator
	}
	return o.Separator
}

// ScanChars reads the corpus at path (a file, or a folder of .txt files as
// Open reads it, separators included) and returns the Char tokeniser of
// its runes. It streams, so the corpus need not fit in memory.
func ScanChars(path string, opt Options) (*Char, error) {
	srcs, err := listSources(path)
	if err != nil {
		return nil, err
	}
	var set runeSet
	if len(srcs) > 1 {
		set.add(opt.separator())
	}
	for i := range srcs {
		if err := scanSource(&srcs[i], &set); err != nil {
			return nil, err
		}
	}
	return set.tokenizer(path)
}

// scanSource adds the runes of one source to set.
func scanSource(s *source, set *runeSet) error {
	r, err := s.open()
	if err != nil {
		return err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		c, _, err := br.ReadRune()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("text: reading %s: %w", s.name, err)
		}
		if c < 256 {
			set.ascii[c] = true
		} else {
			if set.other == nil {
				set.other = map[rune]bool{}
			}
			set.other[c] = true
		}
	}
}

// chunkSize is how much text is tokenised at a time (a variable so that
// tests can make it small).
var chunkSize = 1 << 20

// encodeSource tokenises one source in chunks of about chunkSize bytes and
// passes the tokens to emit.
//
// A chunk ends after a '\n' that has a printable ASCII character on each
// side. No piece of GPT-2's pre-tokenising pattern crosses such a point (the
// '\n' is a piece of its own, and the piece after it starts at the next
// character), so the tokens equal those of the whole text at once. A chunk
// with no such point (a megabyte without a line break) is cut at a rune
// boundary, which is exact for Byte and Char and may merge differently for
// GPT2 at that one point.
func encodeSource(s *source, tok Tokenizer, emit func([]int32) error) error {
	r, err := s.open()
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, 2*chunkSize)
	have, done := 0, int64(0)
	eof := false
	for {
		for have < chunkSize && !eof {
			n, err := r.Read(buf[have:])
			have += n
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("text: reading %s: %w", s.name, err)
			}
		}
		if have == 0 {
			return nil
		}
		cut := have
		if !eof {
			cut = safeCut(buf[:have])
		}
		ids, err := tok.Encode(string(buf[:cut]))
		if err != nil {
			return fmt.Errorf("text: tokenising %s (the chunk from byte %d): %w", s.name, done, err)
		}
		if err := emit(ids); err != nil {
			return err
		}
		done += int64(cut)
		have = copy(buf, buf[cut:have])
		if eof && have == 0 {
			return nil
		}
	}
}

// safeCut returns where to end a chunk of p (see encodeSource).
func safeCut(p []byte) int {
	printable := func(c byte) bool { return c > ' ' && c < 0x7f }
	for i := len(p) - 2; i > len(p)/2; i-- {
		if p[i] == '\n' && printable(p[i-1]) && printable(p[i+1]) {
			return i + 1
		}
	}
	return len(p) - incompleteTail(p)
}
