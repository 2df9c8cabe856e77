package data

import (
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
)

// CSVOptions says how to read a CSV file: which column is the target and
// what kind of target it is. All other columns must be numeric features.
type CSVOptions struct {
	// Label is the name of the target column in the header row
	// (default "label").
	Label string
	// Regression reads the target as a float (Y, Outputs 1) instead of a
	// class label.
	Regression bool
	// Classes, when > 0, fixes the number of classes for integer labels;
	// a label outside [0, Classes) is an error. When 0 it is max label + 1.
	Classes int
	// ClassNames, when set, is the fixed name → index mapping for string
	// labels (a test file uses the training file's mapping); a name not in
	// it is an error.
	ClassNames []string
	// Comma is the field separator (default ',').
	Comma rune
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

// ParseCSV reads CSV text with a header row. The column named opt.Label is
// the target; every other column is a float feature. Class labels are
// either all integers (used as class indices, which must be >= 0; "2.0"
// counts as 2) or
// strings, mapped to indices in sorted order and recorded in ClassNames.
// Errors name the file, the line and the column, and say what was
// expected. name is the file name used in errors and as the Dataset name.
func ParseCSV(r io.Reader, name string, opt CSVOptions) (*Dataset, error) {
	label := opt.Label
	if label == "" {
		label = "label"
	}
	cr := csv.NewReader(r)
	if opt.Comma != 0 {
		cr.Comma = opt.Comma
	}
	cr.FieldsPerRecord = -1 // we check row lengths ourselves, with a clearer message
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false

	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("data: %s: empty file, want a header row", name)
	}
	if err != nil {
		return nil, csvErr(name, err)
	}
	hl, _ := cr.FieldPos(0)
	col := -1
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		header[i] = h
		if h == label {
			if col >= 0 {
				return nil, fmt.Errorf("data: %s:%d: label column %q appears twice (columns %d and %d)", name, hl, label, col+1, i+1)
			}
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("data: %s:%d: no label column %q in header %q; choose the target column by name", name, hl, label, header)
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("data: %s:%d: header has only the label column %q, want at least one feature column", name, hl, label)
	}
	nf := len(header) - 1

	var x []float32
	var rawLabels []string
	var labelLines []int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("data: %s:%d: row has %d fields, want %d (as in the header)", name, line, len(rec), len(header))
		}
		for i, s := range rec {
			if i == col {
				continue
			}
			fl, _ := cr.FieldPos(i)
			v, err := parseNumber(s)
			if err != nil {
				return nil, fmt.Errorf("data: %s:%d: column %d (%q): %v", name, fl, i+1, header[i], err)
			}
			x = append(x, v)
		}
		rawLabels = append(rawLabels, strings.TrimSpace(rec[col]))
		ll, _ := cr.FieldPos(col)
		labelLines = append(labelLines, ll)
	}
	n := len(rawLabels)
	if n == 0 {
		return nil, fmt.Errorf("data: %s: no data rows after the header", name)
	}
	d := &Dataset{
		Name:     strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)),
		X:        x,
		Features: nf,
		Shape:    []int{nf},
	}
	where := func(i int) string {
		return fmt.Sprintf("%s:%d: column %d (%q)", name, labelLines[i], col+1, label)
	}
	if opt.Regression {
		d.Y = make([]float32, n)
		d.Outputs = 1
		for i, s := range rawLabels {
			v, err := parseNumber(s)
			if err != nil {
				return nil, fmt.Errorf("data: %s: %v", where(i), err)
			}
			d.Y[i] = v
		}
		return d, nil
	}

	d.Labels = make([]int32, n)
	if opt.ClassNames == nil {
		ints := true
		for _, s := range rawLabels {
			if _, ok := intLabel(s); !ok {
				ints = false
				break
			}
		}
		if ints {
			maxL := -1
			for i, s := range rawLabels {
				v, _ := intLabel(s)
				if v < 0 || (opt.Classes > 0 && v >= opt.Classes) {
					want := "a class index >= 0"
					if opt.Classes > 0 {
						want = fmt.Sprintf("a class index in [0, %d)", opt.Classes)
					}
					return nil, fmt.Errorf("data: %s: label %d out of range, want %s", where(i), v, want)
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
		for i, s := range rawLabels {
			if s == "" {
				return nil, fmt.Errorf("data: %s: empty label, want a class name or index", where(i))
			}
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
			return nil, fmt.Errorf("data: %s: label %q is not one of the %d known classes %q", where(i), s, len(opt.ClassNames), opt.ClassNames)
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

// intLabel reads a class index written as an integer ("3") or as an
// integral float ("3.0", as many exporters write it), within int32 range.
func intLabel(s string) (int, bool) {
	if v, err := strconv.Atoi(s); err == nil {
		return v, v >= math.MinInt32 && v < math.MaxInt32
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) || f < math.MinInt32 || f >= math.MaxInt32 {
		return 0, false
	}
	return int(f), true
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
			return 0, fmt.Errorf("%q is out of float32 range", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
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
