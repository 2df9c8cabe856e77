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
// nn talks to package device only; it never imports a backend.
package nn
