//go:build cuda

package cuda

// #include <cuda.h>
import "C"

import (
	"fmt"
)

// kernelID names one kernel of the non-GEMM families; the GEMM kernels are
// looked up by the names kernels.PlanGemm returns.
type kernelID int

const (
	kAdd kernelID = iota
	kSub
	kMul
	kScale
	kAxpy
	kFill
	kAddBias
	kActivate
	kActivateGrad
	kSoftmax
	kSoftmaxGrad
	kReducePartial
	kReduceFinal
	kBiasGradPartial
	kBiasGradFinal
	kBiasGradDirect
	kClipByNorm
	kArgmax
	kLossElem
	kXent
	kSGD
	kAdam
	kRandNormal
	kRandUniform
	kDropout
	// conv.cu kernels (add IDs here)
	kIm2Col
	kCol2Im
	kAddChannelBias
	kChannelBiasGrad
	kMaxPool2D
	kMaxPool2DGrad
	kAvgPool2D
	kAvgPool2DGrad
	kAdaptiveAvgPool2D
	kAdaptiveAvgPool2DGrad
	// norm.cu kernels (add IDs here)
	kBNStatsPartial
	kBNStatsFinal
	kBNApply
	kBNGradPartial
	kBNGradFinal
	kBNGradApply
	kLNRows
	kLNGradRows
	kLNGradCols
	kLNGradColsFinal
	// attention.cu kernels (add IDs here)
	kSoftmaxMasked
	kSoftmaxMaskedGrad
	kPermute4
	// embedding.cu kernels (add IDs here)
	kGather
	kScatterAdd
	kXentIgnoreCount
	kXentIgnoreRows
	kXentIgnoreFinal
	numKernels
)

// kernelDefs gives each kernel's family (kernels/<family>.cu) and name.
var kernelDefs = [numKernels]struct{ family, name string }{
	kAdd:             {"elementwise", "add_f32"},
	kSub:             {"elementwise", "sub_f32"},
	kMul:             {"elementwise", "mul_f32"},
	kScale:           {"elementwise", "scale_f32"},
	kAxpy:            {"elementwise", "axpy_f32"},
	kFill:            {"elementwise", "fill_f32"},
	kAddBias:         {"elementwise", "add_bias_f32"},
	kActivate:        {"activations", "activate_f32"},
	kActivateGrad:    {"activations", "activate_grad_f32"},
	kSoftmax:         {"activations", "softmax_rows_f32"},
	kSoftmaxGrad:     {"activations", "softmax_grad_rows_f32"},
	kReducePartial:   {"reduce", "reduce_partial_f32"},
	kReduceFinal:     {"reduce", "reduce_final_f64"},
	kBiasGradPartial: {"reduce", "bias_grad_partial_f32"},
	kBiasGradFinal:   {"reduce", "bias_grad_final_f32"},
	kBiasGradDirect:  {"reduce", "bias_grad_direct_f32"},
	kClipByNorm:      {"reduce", "clip_by_norm_f32"},
	kArgmax:          {"reduce", "argmax_rows_f32"},
	kLossElem:        {"losses", "loss_elem_f32"},
	kXent:            {"losses", "xent_rows_f32"},
	kSGD:             {"optim", "sgd_step_f32"},
	kAdam:            {"optim", "adam_step_f32"},
	kRandNormal:      {"random", "rand_normal_f32"},
	kRandUniform:     {"random", "rand_uniform_f32"},
	kDropout:         {"random", "dropout_mask_f32"},
	// conv.cu kernels (add definitions here)
	kIm2Col:                {"conv", "im2col_f32"},
	kCol2Im:                {"conv", "col2im_f32"},
	kAddChannelBias:        {"conv", "add_channel_bias_f32"},
	kChannelBiasGrad:       {"conv", "channel_bias_grad_f32"},
	kMaxPool2D:             {"conv", "maxpool2d_f32"},
	kMaxPool2DGrad:         {"conv", "maxpool2d_grad_f32"},
	kAvgPool2D:             {"conv", "avgpool2d_f32"},
	kAvgPool2DGrad:         {"conv", "avgpool2d_grad_f32"},
	kAdaptiveAvgPool2D:     {"conv", "adaptive_avgpool2d_f32"},
	kAdaptiveAvgPool2DGrad: {"conv", "adaptive_avgpool2d_grad_f32"},
	// norm.cu kernels (add definitions here)
	kBNStatsPartial:  {"norm", "bn_stats_partial_f32"},
	kBNStatsFinal:    {"norm", "bn_stats_final_f32"},
	kBNApply:         {"norm", "bn_apply_f32"},
	kBNGradPartial:   {"norm", "bn_grad_partial_f32"},
	kBNGradFinal:     {"norm", "bn_grad_final_f32"},
	kBNGradApply:     {"norm", "bn_grad_apply_f32"},
	kLNRows:          {"norm", "layer_norm_rows_f32"},
	kLNGradRows:      {"norm", "layer_norm_grad_rows_f32"},
	kLNGradCols:      {"norm", "layer_norm_grad_cols_f32"},
	kLNGradColsFinal: {"norm", "layer_norm_grad_cols_final_f32"},
	// attention.cu kernels (add definitions here)
	kSoftmaxMasked:     {"attention", "softmax_masked_rows_f32"},
	kSoftmaxMaskedGrad: {"attention", "softmax_masked_grad_rows_f32"},
	kPermute4:          {"attention", "permute4_f32"},
	// embedding.cu kernels (add definitions here)
	kGather:          {"embedding", "gather_rows_f32"},
	kScatterAdd:      {"embedding", "scatter_add_rows_f32"},
	kXentIgnoreCount: {"embedding", "xent_ignore_count"},
	kXentIgnoreRows:  {"embedding", "xent_ignore_rows_f32"},
	kXentIgnoreFinal: {"embedding", "xent_ignore_final"},
}

// Launch shapes shared by the kernels (see each kernel's comment).
const (
	blockSize   = 256 // threads per block for 1-D kernels
	warpsPerBlk = blockSize / 32
	maxPartials = 1024 // most blocks a two-pass reduction uses
)

// grid1D is the grid for a grid-stride kernel over work items: one thread
// per item, capped at 8 blocks of 256 per SM (a full GPU at 2048 threads an
// SM; the loop covers the rest).
func (d *Device) grid1D(work int64) uint32 {
	g := (work + blockSize - 1) / blockSize
	g = min(g, int64(d.sms)*8)
	return uint32(max(g, 1))
}

// rowGrid is the grid for one-warp-per-row kernels.
func rowGrid(rows int) uint32 { return uint32((rows + warpsPerBlk - 1) / warpsPerBlk) }

// launch queues kernel k on the stream with grid × 256 threads.
func (d *Device) launch(k kernelID, grid uint32, args ...uint64) error {
	return d.launchShape(k, [3]uint32{grid, 1, 1}, [3]uint32{blockSize, 1, 1}, args...)
}

// launchShape queues kernel k with an explicit shape. cuLaunchKernel's
// result covers bad launch configurations and resources; faults while the
// kernel runs surface at the next synchronising call (Sync, Read*).
func (d *Device) launchShape(k kernelID, grid, block [3]uint32, args ...uint64) error {
	return d.launchFn(d.fns[k], kernelDefs[k].name, grid, block, 0, args)
}

// launchFn queues f (named name, for errors). With KILN_CUDA_SYNC=1 in the
// environment at Open, it also waits for the kernel and reports a fault
// during its run as this launch's error (for debugging: asynchronous
// faults otherwise surface at the next synchronising call, far from their
// cause).
func (d *Device) launchFn(f C.CUfunction, name string, grid, block [3]uint32, shmem uint32, args []uint64) error {
	if err := launchRaw(f, grid, block, shmem, d.cstream, &d.args, args); err != nil {
		return fmt.Errorf("cuda: launching %s (grid %v, block %v) on %s: %w", name, grid, block, d.spec, err)
	}
	if d.syncEach {
		if err := d.stream.Synchronize(); err != nil {
			return fmt.Errorf("cuda: kernel %s (grid %v, block %v) failed on %s: %w", name, grid, block, d.spec, err)
		}
	}
	return nil
}
