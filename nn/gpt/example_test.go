package gpt_test

import (
	"fmt"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu"
	"github.com/kilnml/kiln/nn/gpt"
)

// Generating text from a GPT-2 checkpoint downloaded from the Hub
// (model.safetensors of gpt2; tokens from a GPT-2 BPE tokeniser).
func ExampleLoadPretrained() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	m, err := gpt.LoadPretrained(dev, "gpt2/model.safetensors", 12)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Free()
	prompt := []int32{15496, 11, 616, 1438, 318} // "Hello, my name is"
	_, err = m.Generate(prompt, 20, gpt.Sampler{Temperature: 0.8, TopK: 40, Seed: 1}, func(tok int32) error {
		fmt.Print(tok, " ") // decode and print as it comes
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
}

// LoRA fine-tuning: adapters on the attention projections, the base
// frozen; train with any optimiser over m.Params, then export.
func ExampleNewLoRA() {
	dev, err := device.Open("cpu")
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	m, err := gpt.NewLoRA(dev, gpt.Tiny(), gpt.LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"c_attn", "c_proj"}}, 1)
	if err != nil {
		panic(err)
	}
	defer m.Free()
	// m.LoadFile("base.safetensors"); train.NewAdamW(m, …); steps …
	adapters, _ := m.AdapterStateDict() // only the lora_A / lora_B tensors
	merged, _ := m.MergedStateDict()    // a plain GPT-2 checkpoint
	fmt.Println(len(adapters.Names), len(merged.Names))
}
