package lm_test

import (
	"fmt"
	"log"
	"os"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn/gpt"
	"github.com/kilnml/kiln/train/lm"
)

// Train a character-level GPT on the embedded Moby-Dick from Go (what
// `kiln lm train` does), then sample from the checkpoint it wrote (what
// `kiln generate` does). Not run by go test: it trains for minutes.
func Example() {
	dev, err := device.Open("auto")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	corpus, err := text.DefaultCorpus()
	if err != nil {
		log.Fatal(err)
	}
	tok, err := text.CharFromText(corpus)
	if err != nil {
		log.Fatal(err)
	}
	ts, err := text.OpenDefault(tok, text.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	trainSpan, valSpan, err := ts.Split(0.1)
	if err != nil {
		log.Fatal(err)
	}
	m, err := gpt.New(dev, gpt.Config{VocabSize: tok.VocabSize(), Context: 64, Layers: 4, Heads: 4, Width: 128}, 1337)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Free()
	cfg := lm.DefaultConfig() // nanoGPT's CPU recipe
	cfg.Out = "lm-out"
	tr, err := lm.NewTrainer(m, tok, trainSpan, valSpan, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Free()
	if _, err := tr.Run(os.Stdout); err != nil {
		log.Fatal(err)
	}

	gen, tok2, err := lm.LoadModel(dev, "lm-out/"+lm.ModelFile)
	if err != nil {
		log.Fatal(err)
	}
	defer gen.Free()
	prompt, _ := tok2.Encode("Call me ")
	d := text.NewStreamDecoder(tok2)
	_, err = gen.Generate(prompt, 200, gpt.Sampler{Temperature: 0.8, TopK: 200, Seed: 1}, func(id int32) error {
		s, err := d.Next(id)
		fmt.Print(s)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Flush())
}
