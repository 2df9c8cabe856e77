package nn_test

import (
	"fmt"

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
