package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/data/text"
	"github.com/kilnml/kiln/nn"
	"github.com/kilnml/kiln/nn/gpt"
	"github.com/kilnml/kiln/train/lm"
)

type generateFlags struct {
	checkpoint, prompt, device string
	maxTokens, topK            int
	temperature                float32
	seed                       uint64
}

func newGenerateCmd() *cobra.Command {
	f := &generateFlags{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write text with a GPT checkpoint, streaming tokens as they come",
		Long: `Sample text from a checkpoint written by 'kiln lm train' (the tokenizer and
the model's shape are in its metadata), one token at a time with a KV cache.
The same --seed gives the same text on a device.

  kiln generate --checkpoint lm-out/model.safetensors --prompt "Call me" --max-tokens 300`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGenerate(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkpoint, "checkpoint", "", "the model: a 'kiln lm train' checkpoint (file or folder); required")
	fl.StringVar(&f.prompt, "prompt", "", "the text to continue (default: a newline; <|endoftext|> for GPT-2's tokenizer)")
	fl.IntVar(&f.maxTokens, "max-tokens", 200, "tokens to generate")
	fl.Float32Var(&f.temperature, "temperature", 0.8, "sampling temperature (0: always the most likely token)")
	fl.IntVar(&f.topK, "top-k", 200, "sample among the k most likely tokens (0: all)")
	fl.Uint64Var(&f.seed, "seed", 1337, "seed of the sampling")
	fl.StringVar(&f.device, "device", "auto", "device: auto (a GPU when there is one), cpu, cuda or cuda:N")
	return cmd
}

func runGenerate(cmd *cobra.Command, f *generateFlags) error {
	if f.checkpoint == "" {
		return fmt.Errorf("--checkpoint: required (a checkpoint written by 'kiln lm train', e.g. lm-out/model.safetensors)")
	}
	if err := nonNegative("max-tokens", f.maxTokens); err != nil {
		return err
	}
	if err := nonNegative("top-k", f.topK); err != nil {
		return err
	}
	if !(f.temperature >= 0) {
		return fmt.Errorf("--temperature %v: want a value ≥ 0", f.temperature)
	}
	path := lmCheckpointPath(f.checkpoint)
	ck, err := lm.ReadCheckpoint(path, 0)
	if err != nil {
		return err
	}
	tok := ck.Tokenizer
	if tok == nil {
		tok = text.NewGPT2() // a Hugging Face GPT-2 file names none
	}
	var prompt []int32
	switch {
	case f.prompt != "":
		if prompt, err = tok.Encode(f.prompt); err != nil {
			return fmt.Errorf("--prompt: %w", err)
		}
	case tok.Name() == "gpt2":
		prompt = []int32{text.GPT2EndOfText}
	default:
		if prompt, err = tok.Encode("\n"); err != nil {
			prompt = []int32{0} // a vocabulary without a newline: its first symbol
		}
	}
	if len(prompt) == 0 {
		return fmt.Errorf("--prompt %q encodes to no token", f.prompt)
	}
	dev, err := openDevice(f.device, false, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer dev.Close()
	m, err := ck.Build(dev)
	if err != nil {
		return err
	}
	defer m.Free()
	nn.SetTraining(m, false)
	return generate(cmd.OutOrStdout(), m, tok, f.prompt, prompt, f)
}

// generate writes the prompt, then each token as soon as it is sampled
// (the stream decoder holds back the bytes of an unfinished character).
func generate(w io.Writer, m *gpt.Model, tok text.Tokenizer, promptText string, prompt []int32, f *generateFlags) error {
	if _, err := io.WriteString(w, promptText); err != nil {
		return err
	}
	d := text.NewStreamDecoder(tok)
	_, err := m.Generate(prompt, f.maxTokens, gpt.Sampler{Temperature: f.temperature, TopK: f.topK, Seed: f.seed}, func(id int32) error {
		s, err := d.Next(id)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, d.Flush()+"\n")
	return err
}
