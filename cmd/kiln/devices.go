package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnml/kiln/device"
)

// cudaHint tells the user of a CPU-only binary how to get GPU support. It
// repeats the device package's wording so that `kiln devices` and
// `kiln train --device cuda` give the same advice.
const cudaHint = "CUDA support is not compiled into this binary: build one with " +
	"`go build -tags cuda ./cmd/kiln` (needs cuda.h and libcuda.so, e.g. Debian's nvidia-cuda-toolkit) " +
	"or use the CUDA Docker image (docker/README.md)"

func newDevicesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "devices",
		Short: "List the devices this binary can train on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			infos, err := device.List()
			out := cmd.OutOrStdout()
			if werr := writeDeviceTable(out, infos); werr != nil {
				return werr
			}
			if !cudaBuilt {
				fmt.Fprintln(out, cudaHint)
			}
			// A backend that failed to enumerate (a CUDA driver that is too
			// old, say) is reported, but the devices that did answer are
			// still listed above: the command is most useful exactly then.
			if err != nil {
				return err
			}
			return nil
		},
	}
}

// writeDeviceTable prints one row per device. Empty fields (the compute
// capability of a CPU) print as "-" so that the columns stay readable.
func writeDeviceTable(w io.Writer, infos []device.Info) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tNAME\tMEMORY\tCORES/SMS\tCOMPUTE CAP\tDRIVER")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			dash(in.Spec), dash(in.Name), formatBytes(in.Memory), countOrDash(in.Cores),
			dash(in.ComputeCapability), dash(in.Driver))
	}
	if len(infos) == 0 {
		fmt.Fprintln(tw, "(no devices)\t\t\t\t\t")
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func countOrDash(n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// formatBytes prints a byte count in binary units with one decimal.
func formatBytes(n int64) string {
	if n <= 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
