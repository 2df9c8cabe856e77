package train_test

import (
	"fmt"
	"log"

	"github.com/kilnml/kiln/data"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/train"
)

// The classic two-layer network: 2 inputs, 4 tanh hidden units, 1 sigmoid
// output, binary cross-entropy, plain full-batch gradient descent, on the
// two interleaving moons (not linearly separable).
func Example_twoLayerNetwork() {
	dev, err := device.Open("cpu")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	trainSet, testSet, err := data.Load("moons", data.Options{Seed: 1, Samples: 400})
	if err != nil {
		log.Fatal(err)
	}
	model, err := nn.Build(dev, nn.MustParseSpec("2-4-tanh-1-sigmoid"), nn.Init{}, 1)
	if err != nil {
		log.Fatal(err)
	}
	opt, err := train.NewSGD(model, device.SGDConfig{LR: 1.2})
	if err != nil {
		log.Fatal(err)
	}
	tr, err := train.NewTrainer(dev, model, opt, train.Config{
		Epochs:    2000, // one full-batch step per epoch
		BatchSize: 0,    // the whole set
		Loss:      device.BCE,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Free()
	if _, err := tr.Fit(trainSet, nil); err != nil {
		log.Fatal(err)
	}
	m, err := train.Evaluate(dev, model, testSet, device.BCE, 1024)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("test accuracy >= 0.95: %v\n", m.Accuracy >= 0.95)
	// Output:
	// test accuracy >= 0.95: true
}
