package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CSVOptions says how to read a CSV file: which column is the target and
// what kind of target it is. All other columns must be numeric features.
type CSVOptions struct {
	// Label is the name of the target column in the header row
	// (default "label"). Several names separated by commas ("y1,y2,y3")
	// make a multi-column target read into Y (Outputs = the number of
	// columns): float targets with Regression (multi-output regression),
	// else 0/1 targets (multi-label classification for BCE). A header
	// name that itself contains commas is matched whole first.
	Label string
	// Regression reads the target as floats (Y) instead of class labels.
	Regression bool
	// Classes, when > 0, fixes the number of classes for integer labels;
	// a label outside [0, Classes) is an error. When 0 it is max label + 1.
	// It applies to a single label column only.
	Classes int
	// ClassNames, when set, is the fixed name → index mapping for string
	// labels (a test file uses the training file's mapping); a name not in
	// it is an error.
	ClassNames []string
	// Comma is the field separator (default ',').
	Comma rune
	// LabelOptional accepts a file without the label column(s): then every
	// column is a feature and the Dataset has neither Labels nor Y (rows
	// to predict). A file that has them is read as usual.
	LabelOptional bool
	// NoHeader reads a file without a header row: every row is data,
	// every column a feature (errors name it by number), and there are no
	// targets. Label must be empty.
	NoHeader bool
	// Shape, when set, is the per-sample shape of the feature columns in
	// row-major order, e.g. [1, 28, 28] for 784 pixel columns of an image
	// dataset (Dense then gives [N, 1, 28, 28]); its product must be the
	// number of feature columns. Unset, the shape is [features].
	Shape []int
}

// ReadCSV reads a CSV file with a header row into a Dataset. See
// ParseCSV for the rules.
func ReadCSV(path string, opt CSVOptions) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	defer f.Close()
	d, err := ParseCSV(f, path, opt)
	if err != nil {
		return nil, err
	}
	d.Source = path
	return d, nil
}

// utf8BOM is the byte-order mark that spreadsheet programs put at the
// start of a UTF-8 CSV file.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// ParseCSV reads CSV text with a header row. A UTF-8 byte-order mark at
// the start is skipped. The column named opt.Label is the target (several
// comma-separated names: a multi-column target, see CSVOptions.Label);
// every other column is a feature, which must be a finite float32 (NaN and
// ±Inf are errors). Class labels are either all integers (class indices,
// which must be >= 0 and below opt.Classes when set; "2.0" counts as 2) or
// all names, mapped to indices in sorted order and recorded in
// ClassNames. A number that is not an integer (0.5, NaN) in a numeric
// label column, or a column that mixes numbers and names, is an error:
// a float target needs opt.Regression. Errors name the file, the line and
// the column (number and header name), say what was expected, and quote
// at most a short prefix of a bad value. opt.LabelOptional and
// opt.NoHeader read prediction inputs with the same rules. name is the
// file name used in errors and as the Dataset name.
func ParseCSV(r io.Reader, name string, opt CSVOptions) (*Dataset, error) {
	label := opt.Label
	if label == "" {
		label = "label"
	}
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	if opt.Comma != 0 {
		cr.Comma = opt.Comma
	}
	cr.FieldsPerRecord = -1 // we check row lengths ourselves, with a clearer message
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false

	header, err := cr.Read()
	if err == io.EOF && opt.NoHeader {
		return nil, fmt.Errorf("data: %s: empty file, want rows of numbers", name)
	}
	if err == io.EOF {
		return nil, fmt.Errorf("data: %s: empty file, want a header row", name)
	}
	if err != nil {
		return nil, csvErr(name, err)
	}
	hl, _ := cr.FieldPos(0)
	var first []string // NoHeader: the first row is data
	if opt.NoHeader {
		if opt.Label != "" {
			return nil, fmt.Errorf("data: %s: Label %s with NoHeader; a file without a header row has no label column", name, quote(opt.Label))
		}
		first = header
		header = make([]string, len(first))
	}
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
	}
	var cols []int
	if !opt.NoHeader {
		cols, err = labelColumns(name, hl, header, label)
		if err != nil && !(opt.LabelOptional && errors.Is(err, errNoLabel)) {
			return nil, err
		}
	}
	isLabel := make([]bool, len(header))
	for _, c := range cols {
		isLabel[c] = true
	}
	nf := len(header) - len(cols)
	if nf < 1 {
		return nil, fmt.Errorf("data: %s:%d: header has only the label column %s, want at least one feature column", name, hl, quote(label))
	}
	multi := len(cols) > 1
	if multi && (opt.Classes > 0 || opt.ClassNames != nil) {
		return nil, fmt.Errorf("data: %s: %d label columns %s with Classes or ClassNames set; those apply to a single label column", name, len(cols), quote(label))
	}

	var x []float32
	var rawLabels []string // row-major, len(cols) per row
	var labelLines []int   // the line of each row's (first) label field, or of the row
	// addRow reads the record just returned by cr.Read (FieldPos refers to it).
	addRow := func(rec []string) error {
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return fmt.Errorf("data: %s:%d: row has %d fields, want %d (as in the header)", name, line, len(rec), len(header))
		}
		for i, s := range rec {
			if isLabel[i] {
				continue
			}
			v, err := parseNumber(s)
			if err != nil {
				fl, _ := cr.FieldPos(i)
				col := fmt.Sprintf("column %d (%s)", i+1, quote(header[i]))
				if opt.NoHeader {
					col = fmt.Sprintf("column %d", i+1)
				}
				return fmt.Errorf("data: %s:%d: %s: %v", name, fl, col, err)
			}
			x = append(x, v)
		}
		for _, c := range cols {
			rawLabels = append(rawLabels, strings.TrimSpace(rec[c]))
		}
		if len(cols) > 0 {
			line, _ = cr.FieldPos(cols[0])
		}
		labelLines = append(labelLines, line)
		return nil
	}
	if first != nil {
		if err := addRow(first); err != nil {
			return nil, err
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(name, err)
		}
		if err := addRow(rec); err != nil {
			return nil, err
		}
	}
	n := len(labelLines)
	if n == 0 {
		return nil, fmt.Errorf("data: %s: no data rows after the header", name)
	}
	d := &Dataset{
		Name:     strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)),
		X:        x,
		Features: nf,
		Shape:    []int{nf},
	}
	if len(opt.Shape) > 0 {
		p := 1
		for _, s := range opt.Shape {
			if s < 1 || p > nf/s { // also keeps the product from overflowing
				p = -1
				break
			}
			p *= s
		}
		if p != nf {
			return nil, fmt.Errorf("data: %s: Shape %v: expected positive sizes whose product is the %d feature columns", name, opt.Shape, nf)
		}
		d.Shape = append([]int(nil), opt.Shape...)
	}
	if len(cols) == 0 {
		return d, nil // LabelOptional without the label column, or NoHeader: inputs only
	}
	// where names the cell of row i, label column j (an index into cols).
	where := func(i, j int) string {
		return fmt.Sprintf("%s:%d: column %d (%s)", name, labelLines[i], cols[j]+1, quote(header[cols[j]]))
	}
	k := len(cols)
	if opt.Regression || multi {
		d.Y = make([]float32, n*k)
		d.Outputs = k
		for i := 0; i < n; i++ {
			for j := 0; j < k; j++ {
				s := rawLabels[i*k+j]
				v, err := parseNumber(s)
				if err == nil && !opt.Regression && v != 0 && v != 1 {
					err = fmt.Errorf("%s is not a 0/1 target (several label columns without Regression are multi-label targets)", quote(s))
				}
				if err != nil {
					return nil, fmt.Errorf("data: %s: %v", where(i, j), err)
				}
				d.Y[i*k+j] = v
			}
		}
		return d, nil
	}

	d.Labels = make([]int32, n)
	for i, s := range rawLabels {
		if s == "" {
			return nil, fmt.Errorf("data: %s: empty label, want a class name or index", where(i, 0))
		}
	}
	if opt.ClassNames == nil {
		// The column is numeric when its first label is a number: then
		// every label must be a class index, and a name among numbers
		// (or a number among names) is reported with both lines.
		numeric := isNumber(rawLabels[0])
		for i, s := range rawLabels {
			if isNumber(s) != numeric {
				return nil, fmt.Errorf("data: %s: label %s, but line %d has %s: the label column mixes numbers and names; want all class indices or all class names", where(i, 0), quote(s), labelLines[0], quote(rawLabels[0]))
			}
		}
		if numeric {
			want := "a class index >= 0"
			if opt.Classes > 0 {
				want = fmt.Sprintf("a class index in [0, %d)", opt.Classes)
			}
			maxL := -1
			for i, s := range rawLabels {
				v, ok := intLabel(s)
				if !ok {
					return nil, fmt.Errorf("data: %s: label %s is not an integer, want %s (a float target needs Regression)", where(i, 0), quote(s), want)
				}
				if v < 0 || v >= math.MaxInt32 || (opt.Classes > 0 && v >= opt.Classes) {
					shown := strconv.Itoa(v)
					if v <= -math.MaxInt32 || v >= math.MaxInt32 {
						shown = quote(s)
					}
					return nil, fmt.Errorf("data: %s: label %s out of range, want %s", where(i, 0), shown, want)
				}
				d.Labels[i] = int32(v)
				maxL = max(maxL, v)
			}
			d.Classes = maxL + 1
			if opt.Classes > 0 {
				d.Classes = opt.Classes
			}
			return d, nil
		}
		set := map[string]bool{}
		for _, s := range rawLabels {
			set[s] = true
		}
		names := make([]string, 0, len(set))
		for s := range set {
			names = append(names, s)
		}
		slices.Sort(names)
		opt.ClassNames = names
	}
	index := make(map[string]int32, len(opt.ClassNames))
	for i, s := range opt.ClassNames {
		index[s] = int32(i)
	}
	for i, s := range rawLabels {
		c, ok := index[s]
		if !ok {
			return nil, fmt.Errorf("data: %s: label %s is not one of the %d known classes %s", where(i, 0), quote(s), len(opt.ClassNames), quoteList(opt.ClassNames))
		}
		d.Labels[i] = c
	}
	d.Classes = len(opt.ClassNames)
	d.ClassNames = append([]string(nil), opt.ClassNames...)
	if opt.Classes > 0 && opt.Classes != d.Classes {
		return nil, fmt.Errorf("data: %s: %d class names found, want %d", name, d.Classes, opt.Classes)
	}
	return d, nil
}

// errNoLabel is wrapped by labelColumns' error when none of the label
// columns is in the header (CSVOptions.LabelOptional accepts that).
var errNoLabel = errors.New("no label column")

// labelColumns finds the target column(s) named by label in the header:
// the column of that exact name, else each of its comma-separated names,
// each of which must appear exactly once.
func labelColumns(name string, line int, header []string, label string) ([]int, error) {
	find := func(l string) ([]int, error) {
		var at []int
		for i, h := range header {
			if h == l {
				at = append(at, i)
			}
		}
		if len(at) > 1 {
			return nil, fmt.Errorf("data: %s:%d: label column %s appears twice (columns %d and %d)", name, line, quote(l), at[0]+1, at[1]+1)
		}
		return at, nil
	}
	at, err := find(label)
	if err != nil || len(at) == 1 {
		return at, err
	}
	if !strings.Contains(label, ",") {
		return nil, fmt.Errorf("data: %s:%d: %w %s in header %s; choose the target column by name", name, line, errNoLabel, quote(label), quoteList(header))
	}
	var cols []int
	var missing []string
	seen := map[string]bool{}
	for _, l := range strings.Split(label, ",") {
		l = strings.TrimSpace(l)
		if l == "" || seen[l] {
			return nil, fmt.Errorf("data: %s: label list %s has an empty or repeated name, want distinct column names separated by commas", name, quote(label))
		}
		seen[l] = true
		at, err := find(l)
		if err != nil {
			return nil, err
		}
		if len(at) == 0 {
			missing = append(missing, l)
			continue
		}
		cols = append(cols, at[0])
	}
	switch {
	case len(cols) == 0:
		return nil, fmt.Errorf("data: %s:%d: %w of %s in header %s; choose the target columns by name", name, line, errNoLabel, quote(label), quoteList(header))
	case len(missing) > 0:
		return nil, fmt.Errorf("data: %s:%d: no label column %s (of %s) in header %s; choose the target columns by name", name, line, quote(missing[0]), quote(label), quoteList(header))
	}
	return cols, nil
}

// maxQuote is the longest value an error message quotes whole; longer ones
// are quoted by a prefix and their length, so a huge cell is not echoed.
const maxQuote = 40

// quote returns s quoted for an error message: whole when short, else a
// prefix (cut at a rune boundary) and the length in bytes.
func quote(s string) string {
	if len(s) <= maxQuote {
		return strconv.Quote(s)
	}
	cut := 32
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// quoteList quotes the first few names of a list (a header, the known
// classes) for an error message and counts the rest.
func quoteList(names []string) string {
	const show = 8
	q := make([]string, 0, show)
	for i, s := range names {
		if i == show {
			break
		}
		q = append(q, quote(s))
	}
	out := "[" + strings.Join(q, " ")
	if len(names) > show {
		out += fmt.Sprintf(" … and %d more", len(names)-show)
	}
	return out + "]"
}

// isNumber says whether s is written as a number (including NaN, Inf and
// values out of float range), as opposed to a name.
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	var ne *strconv.NumError
	return err == nil || errors.As(err, &ne) && ne.Err == strconv.ErrRange
}

// intLabel reads a class index written as an integer ("3") or as an
// integral float ("3.0", as many exporters write it). ok is false when s
// is not an integer (0.5, NaN, Inf, a name); an integer outside int32
// range is returned as ok with v clamped to ±MaxInt32, so that the range
// check reports it as out of range.
func intLabel(s string) (v int, ok bool) {
	if v, err := strconv.Atoi(s); err == nil {
		return min(max(v, -math.MaxInt32), math.MaxInt32), true
	}
	f, err := strconv.ParseFloat(s, 64)
	var ne *strconv.NumError
	if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
		return int(math.Copysign(math.MaxInt32, f)), true // 1e400: an integer, far out of range
	}
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f != math.Trunc(f) {
		return 0, false
	}
	return int(max(min(f, math.MaxInt32), -math.MaxInt32)), true
}

func parseNumber(s string) (float32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty field, want a number")
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%s is out of float32 range", quote(s))
		}
		return 0, fmt.Errorf("%s is not a number", quote(s))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is not a finite number", quote(s))
	}
	return float32(v), nil
}

func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("data: %s:%d: column %d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("data: %s: %v", name, err)
}
