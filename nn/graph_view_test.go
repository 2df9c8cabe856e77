package nn

import (
	"errors"
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
)

// TestNarrowViewReuse: the views Narrow keeps across steps stay views of
// the memory their parent holds now. Step 1 narrows Scale(2, a); after
// Reset, step 2's Scale(3, b) gets the same recycled buffer (same length)
// and its Narrow must read 3·b, not step 1's values; the gradient view of
// the backward pass likewise. A freed parent the graph does not own is
// reported, not served from the cache, and Free empties the cache.
func TestNarrowViewReuse(t *testing.T) {
	dev := openCPU(t)
	g := NewGraph(dev)
	defer g.Free()
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{-1, -2, -3, -4, -5, -6}
	zeros := upload(t, dev, make([]float32, 4))
	kept := 0
	for step, c := range []struct {
		in    []float32
		scale float32
	}{{a, 2}, {b, 3}, {a, 5}, {b, 7}, {a, 9}, {b, 11}} {
		g.Reset()
		x, err := g.Variable(upload(t, dev, c.in), 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		y, err := g.Scale(c.scale, x)
		if err != nil {
			t.Fatal(err)
		}
		n, err := g.Narrow(y, 1, 2) // rows 1 and 2: elements 2..5
		if err != nil {
			t.Fatal(err)
		}
		got, err := n.Values()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if want := c.scale * c.in[2+i]; v != want {
				t.Fatalf("step %d: narrow[%d] = %v, want %v", step, i, v, want)
			}
		}
		// HalfSSE against 0 over the 2 rows: dn = n/2, so dx = scale·n/2 =
		// scale²·in/2 on rows 1–2, 0 on row 0.
		loss, err := g.Loss(device.HalfSSE, n, zeros)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(loss); err != nil {
			t.Fatal(err)
		}
		dx, err := x.GradValues()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range dx {
			want := 0.0
			if i >= 2 {
				want = float64(c.scale) * float64(c.scale) * float64(c.in[i]) / 2
			}
			// Two or three float32 roundings: 1e-6 relative is ample and
			// far below any stale value (other inputs differ by ≥ 25%).
			if math.Abs(float64(v)-want) > 1e-6*math.Abs(want) {
				t.Fatalf("step %d: dx[%d] = %v, want %v", step, i, v, want)
			}
		}
		if step == 2 {
			kept = len(g.views)
		}
	}
	// The graph's three buffers of 6 elements (x's gradient, y, y's
	// gradient) may trade roles in the first steps; from then on the
	// steps reuse the views they made (the same recycled parents).
	if kept == 0 || len(g.views) != kept {
		t.Fatalf("views kept: %d after step 3, %d after step 6; want the same, > 0", kept, len(g.views))
	}

	// A parent the caller owns, freed between steps: the error, not a
	// stale view.
	g.Reset()
	buf := upload(t, dev, a)
	x, err := g.Input(buf, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Narrow(x, 0, 1); err != nil {
		t.Fatal(err)
	}
	g.Reset()
	if err := dev.Free(buf); err != nil {
		t.Fatal(err)
	}
	x, err = g.Input(buf, 3, 2)
	if err == nil {
		_, err = g.Narrow(x, 0, 1)
	}
	if !errors.Is(err, device.ErrFreed) {
		t.Errorf("Narrow of a freed parent: err = %v, want ErrFreed", err)
	}
	if err := g.Free(); err != nil {
		t.Fatal(err)
	}
	if len(g.views) != 0 {
		t.Errorf("Free left %d views in the cache", len(g.views))
	}
}

// TestViewCacheKeepsOneStep: a step that asks for more views than the old
// fixed cap (1,024; a CNN with many grouped convolutions does) gets the
// same view objects back in every later step, and a view no step asked
// for since the last Reset is dropped, so the cache holds no parent for
// longer than two idle steps (viewSteps: the free lists swap same-length
// buffers between steps, so a steady step's views alternate parents).
func TestViewCacheKeepsOneStep(t *testing.T) {
	dev := openCPU(t)
	g := NewGraph(dev)
	defer g.Free()
	const rows = 3000
	src := upload(t, dev, make([]float32, rows*2))
	narrowAll := func() []device.Buffer {
		g.Reset()
		x, err := g.Input(src, rows, 2)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]device.Buffer, rows)
		for r := range out {
			n, err := g.Narrow(x, r, 1)
			if err != nil {
				t.Fatal(err)
			}
			out[r] = n.val
		}
		return out
	}
	first := narrowAll()
	for step := 2; step <= 3; step++ {
		again := narrowAll()
		for r := range again {
			if again[r] != first[r] {
				t.Fatalf("step %d: row %d's view is a new object; the cache dropped views a steady step uses", step, r)
			}
		}
	}
	if len(g.views) != rows {
		t.Fatalf("cache holds %d views, want %d", len(g.views), rows)
	}

	// One step asking for row 0 only: after its Reset the other rows are gone.
	g.Reset()
	x, err := g.Input(src, rows, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Narrow(x, 0, 1); err != nil {
		t.Fatal(err)
	}
	g.Reset()
	if len(g.views) != rows {
		t.Fatalf("after a step that asked for one view: cache holds %d, want all %d (asked for one step ago)", len(g.views), rows)
	}
	g.Reset() // a step that asked for none
	if len(g.views) != 1 {
		t.Fatalf("after a step that asked for one view and an idle one: cache holds %d, want 1", len(g.views))
	}
	g.Reset()
	if len(g.views) != 0 {
		t.Fatalf("after two idle steps: cache holds %d views, want 0", len(g.views))
	}
}
