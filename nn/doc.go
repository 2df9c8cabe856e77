// Package nn is tensors on a device.Device with reverse-mode autodiff, and
// the layers, activations, losses, initialisers, model spec and
// safetensors state dict built on them.
//
// A training step records ops on a Graph (the tape) and walks it back:
//
//	g := nn.NewGraph(dev)
//	for each batch {
//		g.Reset()                 // recycle last step's buffers
//		m.ZeroGrad()              // one Fill over the flat gradients
//		x, _ := g.Input(batch, rows, m.Spec().In)
//		y, _ := m.Forward(g, x)
//		loss, _ := g.Loss(device.SoftmaxCrossEntropy, y, labels)
//		g.Backward(loss)          // accumulates into the Params' grads
//		optimiser step over m.Flat()
//	}
//
// Models are trees of Modules (Children, OwnParams) with PyTorch's
// state_dict names ("features.0.weight"). NewParamSet places every
// parameter of a tree in one flat value buffer and one flat gradient
// buffer (buffers such as running_mean in a third), so ZeroGrad is one
// Fill and an optimiser step one launch per contiguous run:
//
//	net := nn.NewSequential(nn.NewLinear(784, 256, true), &nn.Activation{Act: device.ReLU}, nn.NewLinear(256, 10, true))
//	ps, _ := nn.NewParamSet(dev, net, seed)   // Build(dev, spec, init, seed) does both for spec strings
//
// Layers read their parameters with Graph.Param, which honours
// Param.Frozen at that forward.
//
// nn talks to package device only; it never imports a backend.
package nn
