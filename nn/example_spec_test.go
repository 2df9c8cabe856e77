package nn_test

import (
	"fmt"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
)

// An image model from a spec string: the input shape first, then
// convolution, batch norm, pooling and flatten tokens; Build makes the
// torch.nn.Sequential-named model, which takes flat [N, C·H·W] rows or
// NCHW tensors.
func ExampleParseSpec_image() {
	spec, err := nn.ParseSpec("1x28x28-conv16k3p1-bn-relu-maxpool2-flatten-10")
	if err != nil {
		panic(err)
	}
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	m, err := nn.Build(dev, spec, nn.Init{}, 1)
	if err != nil {
		panic(err)
	}
	defer m.Free()
	fmt.Println(spec, "→", spec.Out(), "outputs,", spec.MACs(), "multiply-adds a sample")
	for _, p := range m.ParamSet().All() {
		fmt.Println(p.Name, p.Shape)
	}
	// Output:
	// 1x28x28-conv16k3p1-bn-relu-maxpool2-flatten-10 → 10 outputs, 144256 multiply-adds a sample
	// 0.weight [16 1 3 3]
	// 0.bias [16]
	// 1.weight [16]
	// 1.bias [16]
	// 1.running_mean [16]
	// 1.running_var [16]
	// 5.weight [10 3136]
	// 5.bias [10]
}
