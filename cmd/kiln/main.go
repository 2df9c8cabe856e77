// Command kiln trains, evaluates and benchmarks neural networks on the CPU
// or on an NVIDIA GPU with the same model code.
//
// The CPU backend is always compiled in. The CUDA backend is added by the
// cuda build tag (go build -tags cuda ./cmd/kiln): gorgonia.org/cu
// initialises the driver when the program starts and exits when no GPU
// answers, so a binary that links it cannot start on a machine without one.
// That is why the default build is CPU-only.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	// The CPU backend registers the "cpu" device; it is in every build.
	_ "github.com/kilnml/kiln/device/cpu"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status. It is
// main without os.Exit, so that tests run the commands in-process.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "kiln: %v\n", err)
		return 1
	}
	return 0
}

// newRootCmd builds a fresh command tree. Each call returns new commands and
// new flag sets, so that tests can run several command lines without flag
// values leaking from one run into the next.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Train neural networks on the CPU or an NVIDIA GPU",
		Long: `kiln trains, evaluates and benchmarks feed-forward neural networks.
The same model runs on the CPU or, in a binary built with -tags cuda, on an
NVIDIA GPU; pick one with --device auto|cpu|cuda|cuda:N.

Start with:  kiln train        (trains a small model on the embedded digits set)`,
		// Errors are printed once, by run, as "kiln: <error>"; a usage dump
		// after a runtime error (a missing file, say) would bury the message.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if s := suggestFlag(c, err); s != "" {
			return fmt.Errorf("%w; did you mean --%s? (see '%s --help')", err, s, c.CommandPath())
		}
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(
		newDevicesCmd(),
		newVersionCmd(),
		newTrainCmd(),
		newEvalCmd(),
		newPredictCmd(),
		newBenchCmd(),
		newSweepCmd(),
		newCVCmd(),
		newLMCmd(),
		newGenerateCmd(),
	)
	return root
}

// suggestFlag returns the flag of c nearest to the unknown one err names
// ("unknown flag: --bacth-size" → "batch-size"), or "" when none is close:
// cobra suggests mistyped commands but not mistyped flags.
func suggestFlag(c *cobra.Command, err error) string {
	msg := err.Error()
	i := strings.Index(msg, "unknown flag: --")
	if i < 0 {
		return ""
	}
	bad := strings.Fields(msg[i+len("unknown flag: --"):])
	if len(bad) == 0 {
		return ""
	}
	name, _, _ := strings.Cut(bad[0], "=")
	best, bestD := "", 1<<30
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name) {
			d = min(d, 1)
		}
		if d < bestD || d == bestD && f.Name < best {
			best, bestD = f.Name, d
		}
	})
	if bestD <= max(2, len(name)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
