package train_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// mlp is a model with named submodules, as a PyTorch nn.Module with
// attributes body and head: its state_dict names are body.0.weight, …,
// head.weight, head.bias.
type mlp struct {
	body *nn.Sequential
	head *nn.Linear
}

func newMLP() *mlp {
	return &mlp{
		body: nn.NewSequential(
			nn.NewLinear(2, 32, true), &nn.Activation{Act: device.Tanh},
			nn.NewLinear(32, 32, true), &nn.Activation{Act: device.Tanh},
		),
		head: nn.NewLinear(32, 2, true),
	}
}

func (m *mlp) Forward(g *nn.Graph, x *nn.Tensor) (*nn.Tensor, error) {
	h, err := m.body.Forward(g, x)
	if err != nil {
		return nil, err
	}
	return m.head.Forward(g, h)
}

func (m *mlp) Children() []nn.Child {
	return []nn.Child{{Name: "body", Module: m.body}, {Name: "head", Module: m.head}}
}
func (m *mlp) OwnParams() []*nn.Param { return nil }
func (m *mlp) SetTraining(bool)       {}

// A training program: build a module tree and its parameter set, train it
// with AdamW and a cosine schedule, evaluate it, predict one batch by hand,
// and save and load the weights.
func ExampleNewModelTrainer() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	trainSet, testSet, err := data.Load("moons", data.Options{Samples: 800, Seed: 1})
	if err != nil {
		panic(err)
	}

	// Build: the parameters are initialised from the seed, in one arena.
	net := newMLP()
	params, err := nn.NewParamSet(dev, net, 1)
	if err != nil {
		panic(err)
	}
	defer params.Free()
	model := train.Model{Module: net, Params: params, Outputs: 2} // flat input of the dataset's 2 features

	// Train.
	opt, err := train.NewAdamW(params, train.DefaultAdamW(0.02), train.DecayGroups(params, 1e-4)...)
	if err != nil {
		panic(err)
	}
	tr, err := train.NewModelTrainer(dev, model, opt, train.Config{
		Epochs: 30, BatchSize: 32, Loss: device.SoftmaxCrossEntropy, Seed: 1, Shuffle: true,
		Schedule: &train.Cosine{Base: 0.02, Warmup: 2, Total: 30},
	})
	if err != nil {
		panic(err)
	}
	defer tr.Free()
	res, err := tr.Fit(trainSet, testSet)
	if err != nil {
		panic(err)
	}
	fmt.Println("epochs:", res.Epochs, "stopped by:", res.StopReason)

	// Evaluate: loss, accuracy, confusion matrix, precision/recall/F1.
	met, err := train.EvaluateModel(dev, model, testSet, device.SoftmaxCrossEntropy, 256)
	if err != nil {
		panic(err)
	}
	fmt.Println("test accuracy above 0.95:", met.Accuracy > 0.95)

	// Predict: evaluation mode, no tape, the argmax of each row on the device.
	x, err := dev.Alloc(device.Float32, 2*2)
	if err != nil {
		panic(err)
	}
	defer dev.Free(x)
	if err := dev.WriteF32(x, 0, testSet.X[:4]); err != nil { // the first two test points
		panic(err)
	}
	g := nn.NewGraph(dev)
	defer g.Free()
	g.SetGradEnabled(false)
	nn.SetTraining(net, false)
	in, err := g.Input(x, 2, 2)
	if err != nil {
		panic(err)
	}
	logits, err := net.Forward(g, in)
	if err != nil {
		panic(err)
	}
	classes, err := dev.Alloc(device.Int32, 2)
	if err != nil {
		panic(err)
	}
	defer dev.Free(classes)
	if err := dev.ArgmaxRows(logits.Value(), 2, 2, classes); err != nil {
		panic(err)
	}
	pred := make([]int32, 2)
	if err := dev.ReadI32(pred, classes, 0); err != nil {
		panic(err)
	}
	g.Reset()
	fmt.Println("predicted", pred, "labelled", testSet.Labels[:2])

	// Save (safetensors, PyTorch names) and load into a fresh model.
	dir, err := os.MkdirTemp("", "kiln-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "moons.safetensors")
	if err := train.SaveModel(path, model, map[string]string{"dataset": "moons"}); err != nil {
		panic(err)
	}
	sd, err := nn.LoadSafetensors(path)
	if err != nil {
		panic(err)
	}
	fresh, err := nn.NewParamSet(dev, newMLP(), 2) // other initial weights…
	if err != nil {
		panic(err)
	}
	defer fresh.Free()
	if _, err := fresh.LoadStateDict(sd, nn.LoadOptions{Strict: true}); err != nil { // …replaced by the saved ones
		panic(err)
	}
	again, err := train.EvaluateModel(dev, train.Model{Module: fresh.Root(), Params: fresh, Outputs: 2}, testSet, device.SoftmaxCrossEntropy, 256)
	if err != nil {
		panic(err)
	}
	fmt.Println("same accuracy after loading:", again.Accuracy == met.Accuracy)
	for _, p := range fresh.Params()[:2] {
		fmt.Println(p.Name, p.Shape)
	}
	// Output:
	// epochs: 30 stopped by: epochs
	// test accuracy above 0.95: true
	// predicted [0 1] labelled [0 1]
	// same accuracy after loading: true
	// body.0.weight [32 2]
	// body.0.bias [32]
}
