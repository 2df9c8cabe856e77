package devicetest_test

import (
	"github.com/kilnml/kiln/device"
)

// Mutants of the embedding family (Gather, ScatterAdd, CrossEntropy): each
// breaks one primitive as a real kernel could be broken; the subtest named
// must fail.
func init() {
	mutants = append(mutants,
		mutant{"gather_off_by_one_row", "Embedding/Gather"},
		mutant{"gather_clamps_bad_index", "Embedding/Errors"},
		mutant{"scatteradd_last_write_wins", "Embedding/ScatterAdd"},
		mutant{"scatteradd_descending_order", "Embedding/ScatterAdd"},
		mutant{"crossentropy_mean_over_all_rows", "Embedding/CrossEntropy"},
		mutant{"crossentropy_ignored_grad_untouched", "Embedding/CrossEntropy/all_ignored"},
		// The existing ActivateGrad mutant (alpha forced to 0.01) must
		// also be caught by ELU's gradient with alpha 0.5.
		mutant{"activategrad_ignores_alpha", "ActivateGrad/^elu0.5$"},
	)
}

// remapIdx runs call with a temporary copy of the n indices of idx passed
// through f.
func (d *mutantDev) remapIdx(idx device.Buffer, n int, f func(int32) int32, call func(device.Buffer) error) error {
	ix := make([]int32, n)
	if err := d.ReadI32(ix, idx, 0); err != nil {
		return err
	}
	for i, v := range ix {
		ix[i] = f(v)
	}
	tmp, err := d.Alloc(device.Int32, n)
	if err != nil {
		return err
	}
	defer d.Free(tmp)
	if err := d.WriteI32(tmp, 0, ix); err != nil {
		return err
	}
	return call(tmp)
}

func (d *mutantDev) Gather(table, idx, out device.Buffer, rows, cols, n int) error {
	call := func(ix device.Buffer) error { return d.Device.Gather(table, ix, out, rows, cols, n) }
	switch d.name {
	case "gather_off_by_one_row":
		return d.remapIdx(idx, n, func(r int32) int32 { return min(r+1, int32(rows-1)) }, call)
	case "gather_clamps_bad_index":
		return d.remapIdx(idx, n, func(r int32) int32 { return max(0, min(r, int32(rows-1))) }, call)
	}
	return call(idx)
}

func (d *mutantDev) ScatterAdd(dtable, idx, dout device.Buffer, rows, cols, n int) error {
	if d.name != "scatteradd_last_write_wins" && d.name != "scatteradd_descending_order" {
		return d.Device.ScatterAdd(dtable, idx, dout, rows, cols, n)
	}
	// On the host, with the real call's checks first.
	tab := make([]float32, rows*cols)
	if err := d.ReadF32(tab, dtable, 0); err != nil {
		return err
	}
	if err := d.Device.ScatterAdd(dtable, idx, dout, rows, cols, n); err != nil {
		return err
	}
	ix := make([]int32, n)
	g := make([]float32, n*cols)
	if err := d.ReadI32(ix, idx, 0); err != nil {
		return err
	}
	if err := d.ReadF32(g, dout, 0); err != nil {
		return err
	}
	out := append([]float32(nil), tab...)
	if d.name == "scatteradd_last_write_wins" {
		// Each row gets orig + the last of its terms (racing stores).
		for i, r := range ix {
			for j := 0; j < cols; j++ {
				out[int(r)*cols+j] = tab[int(r)*cols+j] + g[i*cols+j]
			}
		}
	} else {
		for i := n - 1; i >= 0; i-- {
			r := int(ix[i])
			for j := 0; j < cols; j++ {
				out[r*cols+j] += g[i*cols+j]
			}
		}
	}
	return d.WriteF32(dtable, 0, out)
}

func (d *mutantDev) CrossEntropy(logits, labels device.Buffer, rows, cols int, ignoreIndex int32, loss, grad device.Buffer) error {
	switch d.name {
	case "crossentropy_mean_over_all_rows":
		if err := d.Device.CrossEntropy(logits, labels, rows, cols, ignoreIndex, loss, grad); err != nil {
			return err
		}
		lab := make([]int32, rows)
		if err := d.ReadI32(lab, labels, 0); err != nil {
			return err
		}
		kept := 0
		for _, l := range lab {
			if l != ignoreIndex {
				kept++
			}
		}
		f := float32(kept) / float32(rows)
		l := make([]float32, 1)
		if err := d.ReadF32(l, loss, 0); err != nil {
			return err
		}
		if err := d.WriteF32(loss, 0, []float32{l[0] * f}); err != nil {
			return err
		}
		if grad != nil {
			return d.Scale(f, grad, grad, rows*cols)
		}
		return nil
	case "crossentropy_ignored_grad_untouched":
		if grad == nil {
			break
		}
		before := make([]float32, rows*cols)
		if err := d.ReadF32(before, grad, 0); err != nil {
			return err
		}
		if err := d.Device.CrossEntropy(logits, labels, rows, cols, ignoreIndex, loss, grad); err != nil {
			return err
		}
		lab := make([]int32, rows)
		if err := d.ReadI32(lab, labels, 0); err != nil {
			return err
		}
		for r, l := range lab {
			if l == ignoreIndex {
				if err := d.WriteF32(grad, r*cols, before[r*cols:(r+1)*cols]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return d.Device.CrossEntropy(logits, labels, rows, cols, ignoreIndex, loss, grad)
}
