package nn_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
)

// classifier is a module with named children, like a PyTorch module with
// attributes backbone and head.
type classifier struct {
	backbone *nn.Sequential
	head     *nn.Linear
}

func (c *classifier) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	x, err := c.backbone.Forward(g, x)
	if err != nil {
		return nil, err
	}
	return c.head.Forward(g, x)
}
func (c *classifier) Children() []nn.Child {
	return []nn.Child{{Name: "backbone", Module: c.backbone}, {Name: "head", Module: c.head}}
}
func (c *classifier) OwnParams() []*nn.Param { return nil }
func (c *classifier) SetTraining(bool)       {}

// A module tree gets PyTorch's state_dict names and one parameter arena;
// freezing by prefix prepares fine-tuning of the head alone.
func ExampleNewParamSet() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	m := &classifier{
		backbone: nn.NewSequential(nn.NewLinear(8, 16, true), &nn.Activation{Act: device.ReLU}),
		head:     nn.NewLinear(16, 3, true),
	}
	ps, err := nn.NewParamSet(dev, m, 1)
	if err != nil {
		panic(err)
	}
	defer ps.Free()
	if err := ps.SetFrozen(true, "backbone."); err != nil {
		panic(err)
	}
	for _, p := range ps.Params() {
		fmt.Println(p.Name, p.Shape, "offset", p.Offset, "frozen", p.Frozen)
	}
	fmt.Println(ps.NumParams(), "parameters")
	// Output:
	// backbone.0.weight [16 8] offset 0 frozen true
	// backbone.0.bias [16] offset 128 frozen true
	// head.weight [3 16] offset 144 frozen false
	// head.bias [3] offset 192 frozen false
	// 195 parameters
}

// One training step by hand, the loop every trainer runs: zero the
// gradients, forward on a graph, a fused loss, backward, an optimiser step
// (here plain SGD written against the flat buffers: w −= lr·∇w), Reset.
// The loss of a fixed batch must fall.
func ExampleGraph_Backward() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	m := &classifier{
		backbone: nn.NewSequential(nn.NewLinear(4, 8, true), &nn.Activation{Act: device.Tanh}),
		head:     nn.NewLinear(8, 3, true),
	}
	ps, err := nn.NewParamSet(dev, m, 7)
	if err != nil {
		panic(err)
	}
	defer ps.Free()
	x, _ := dev.Alloc(device.Float32, 2*4)
	y, _ := dev.Alloc(device.Int32, 2)
	defer dev.Free(x)
	defer dev.Free(y)
	_ = dev.WriteF32(x, 0, []float32{1, 0, -1, 0.5, 0, 1, 1, -0.5})
	_ = dev.WriteI32(y, 0, []int32{2, 0})
	values, grads := ps.Flat()
	g := nn.NewGraph(dev)
	defer g.Free()
	var losses []float32
	var shape []int
	for step := 0; step < 20; step++ {
		if err := ps.ZeroGrad(); err != nil {
			panic(err)
		}
		in, err := g.Input(x, 2, 4)
		if err != nil {
			panic(err)
		}
		logits, err := m.Forward(g, in)
		if err != nil {
			panic(err)
		}
		loss, err := g.Loss(device.SoftmaxCrossEntropy, logits, y)
		if err != nil {
			panic(err)
		}
		if err := g.Backward(loss); err != nil {
			panic(err)
		}
		var l [1]float32
		if err := dev.ReadF32(l[:], loss.Value(), 0); err != nil {
			panic(err)
		}
		losses = append(losses, l[0])
		shape = append(shape[:0], logits.Shape()...) // copied: a step's tensors are recycled by Reset
		if err := dev.Axpy(-0.5, grads, values, ps.NumParams()); err != nil {
			panic(err)
		}
		g.Reset()
	}
	fmt.Println("logits shape:", shape)
	fmt.Println("loss fell by more than half:", losses[19] < losses[0]/2)
	// Output:
	// logits shape: [2 3]
	// loss fell by more than half: true
}

// Saving and loading: the state_dict goes to a safetensors file with
// PyTorch names (a model saved here loads in PyTorch with
// load_state_dict, and the other way round), and loads all or nothing
// into a set of the same structure.
func ExampleParamSet_LoadStateDict() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	build := func(seed uint64) *nn.ParamSet {
		m := &classifier{
			backbone: nn.NewSequential(nn.NewLinear(4, 8, true), nn.NewBatchNorm1d(8), &nn.Activation{Act: device.ReLU}),
			head:     nn.NewLinear(8, 3, true),
		}
		ps, err := nn.NewParamSet(dev, m, seed)
		if err != nil {
			panic(err)
		}
		return ps
	}
	saved := build(1)
	defer saved.Free()
	sd, err := saved.StateDict()
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "kiln-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")
	if err := nn.WriteSafetensors(path, sd); err != nil {
		panic(err)
	}
	fmt.Println(sd.Names)

	loaded := build(2) // different initial weights
	defer loaded.Free()
	sd2, err := nn.LoadSafetensors(path)
	if err != nil {
		panic(err)
	}
	rep, err := loaded.LoadStateDict(sd2, nn.LoadOptions{Strict: true})
	if err != nil {
		panic(err)
	}
	a, b := make([]float32, saved.NumParams()), make([]float32, loaded.NumParams())
	va, _ := saved.Flat()
	vb, _ := loaded.Flat()
	_ = dev.ReadF32(a, va, 0)
	_ = dev.ReadF32(b, vb, 0)
	same := true
	for i := range a {
		same = same && a[i] == b[i]
	}
	fmt.Println("missing", rep.Missing, "unexpected", rep.Unexpected, "weights equal:", same)
	// Output:
	// [backbone.0.weight backbone.0.bias backbone.1.weight backbone.1.bias backbone.1.running_mean backbone.1.running_var backbone.1.num_batches_tracked head.weight head.bias]
	// missing [] unexpected [] weights equal: true
}
