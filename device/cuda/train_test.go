//go:build cuda

package cuda_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kilnml/kiln/device"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// trainRun trains spec on dev for steps Adam steps over the given batches
// (cross-entropy) and returns each step's loss and the final flat weights.
// It also checks that the steps after the first reach cuMemAlloc (or make)
// no more.
func trainRun(t *testing.T, dev device.Device, spec string, xs [][]float32, ys [][]int32, batch, features int) ([]float32, []float32) {
	t.Helper()
	model, err := nn.Build(dev, nn.MustParseSpec(spec), nn.Init{}, 42)
	must(t, "nn.Build", err)
	defer model.Free()
	opt, err := train.NewAdam(model, train.DefaultAdam(1e-3))
	must(t, "train.NewAdam", err)
	g := nn.NewGraph(dev)
	defer g.Free()
	xb, err := dev.Alloc(device.Float32, batch*features)
	must(t, "Alloc", err)
	yb, err := dev.Alloc(device.Int32, batch)
	must(t, "Alloc", err)
	var losses []float32
	var sysAfterWarmup int64
	for step := range xs {
		if step == 2 {
			must(t, "Sync", dev.Sync())
			sysAfterWarmup = dev.Stats().SystemAllocs
		}
		must(t, "WriteF32", dev.WriteF32(xb, 0, xs[step]))
		must(t, "WriteI32", dev.WriteI32(yb, 0, ys[step]))
		must(t, "ZeroGrad", model.ZeroGrad())
		x, err := g.Input(xb, batch, features)
		must(t, "Input", err)
		pred, err := model.Forward(g, x)
		must(t, "Forward", err)
		loss, err := g.Loss(device.SoftmaxCrossEntropy, pred, yb)
		must(t, "Loss", err)
		must(t, "Backward", g.Backward(loss))
		must(t, "Adam step", opt.Step())
		var l [1]float32
		must(t, "ReadF32(loss)", dev.ReadF32(l[:], loss.Value(), 0))
		losses = append(losses, l[0])
		g.Reset()
	}
	if sys := dev.Stats().SystemAllocs; sys != sysAfterWarmup {
		t.Errorf("%s: SystemAllocs went %d → %d over steady training steps; want no new device allocations", dev.Name(), sysAfterWarmup, sys)
	}
	values, _ := model.Flat()
	w := make([]float32, values.Len())
	must(t, "ReadF32(weights)", dev.ReadF32(w, values, 0))
	must(t, "Free", dev.Free(xb))
	must(t, "Free", dev.Free(yb))
	return losses, w
}

// TestTrainingParity trains the same 784-256-relu-128-relu-10 network from
// the same seed on the same batches for 20 Adam steps on the CPU and on the
// GPU: every step's loss must agree within 1e-4 relative, and the final
// weights within 1e-4 (normwise relative).
func TestTrainingParity(t *testing.T) {
	gpu, cpu := openCUDA(t), openCPU(t)
	const (
		spec     = "784-256-relu-128-relu-10"
		batch    = 64
		features = 784
		steps    = 20
	)
	r := rand.New(rand.NewPCG(5, 6))
	var xs [][]float32
	var ys [][]int32
	for s := 0; s < steps; s++ {
		x := make([]float32, batch*features)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]int32, batch)
		for i := range y {
			y[i] = int32(r.IntN(10))
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	gl, gw := trainRun(t, gpu, spec, xs, ys, batch, features)
	cl, cw := trainRun(t, cpu, spec, xs, ys, batch, features)
	for s := range gl {
		rel := math.Abs(float64(gl[s])-float64(cl[s])) / math.Abs(float64(cl[s]))
		t.Logf("step %2d: loss gpu %.7f cpu %.7f (rel diff %.2g)", s+1, gl[s], cl[s], rel)
		if !(rel <= 1e-4) {
			t.Errorf("step %d: loss gpu %v, cpu %v: relative difference %.3g > 1e-4", s+1, gl[s], cl[s], rel)
		}
	}
	if e := relErr(gw, cw); !(e <= 1e-4) {
		d, at := maxAbsDiff(gw, cw)
		t.Errorf("final weights: normwise relative difference %.3g > 1e-4 (largest %.3g at %d)", e, d, at)
	} else {
		t.Logf("final weights (%d): normwise relative difference %.3g", len(gw), e)
	}
}
