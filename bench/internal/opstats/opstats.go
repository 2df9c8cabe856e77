// Package opstats is the benchmarks' -ops wrapper (bench/cnnbench,
// bench/blockbench): a device.Device that times every primitive call and
// lists the calls by shape. Its methods, one per method of device.Device, were
// written mechanically from the interface (time the inner call, key it by
// the method and its integer and boolean arguments); a method added to
// the interface is simply passed through untimed by the embedded Device,
// but its Buffer arguments would then reach the inner device still
// wrapped, so add a method here alongside.

package opstats

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kilnml/kiln/device"
)

// Device wraps a Device and records the wall time of every call,
// keyed by method and its size arguments (-ops). Its buffers wrap the
// inner device's so that they report it as their device (nn checks);
// every argument is unwrapped before the inner call. CacheBlockBytes is
// forwarded, so nn splits the convolutions as on the bare device.
type Device struct {
	device.Device
	On    bool // record calls only while set
	stats map[string]*opStat
	order []string
}

type opStat struct {
	calls int
	total time.Duration
}

type tbuf struct {
	device.Buffer
	d *Device
}

func (b tbuf) Device() device.Device { return b.d }

func (t *Device) wrap(b device.Buffer) device.Buffer {
	if b == nil {
		return nil
	}
	return tbuf{b, t}
}

func u(b device.Buffer) device.Buffer {
	if w, ok := b.(tbuf); ok {
		return w.Buffer
	}
	return b
}

// New wraps d; calls are recorded while On is set.
func New(d device.Device) *Device {
	return &Device{Device: d, stats: map[string]*opStat{}}
}

// CacheBlockBytes forwards the inner device's hint.
func (t *Device) CacheBlockBytes() int {
	if h, ok := t.Device.(device.CacheHinter); ok {
		return h.CacheBlockBytes()
	}
	return 0
}

func (t *Device) rec(t0 time.Time, format string, args ...any) {
	if !t.On {
		return
	}
	d := time.Since(t0)
	key := fmt.Sprintf(format, args...)
	s := t.stats[key]
	if s == nil {
		s = &opStat{}
		t.stats[key] = s
		t.order = append(t.order, key)
	}
	s.calls++
	s.total += d
}

// Report writes each key's time per step over steps steps, the largest
// first, and their sum.
func (t *Device) Report(w io.Writer, steps int) {
	keys := slices.Clone(t.order)
	slices.SortFunc(keys, func(a, b string) int { return int(t.stats[b].total - t.stats[a].total) })
	var sum time.Duration
	for _, k := range keys {
		s := t.stats[k]
		sum += s.total
		fmt.Fprintf(w, "%8.3f ms/step %4.1f calls/step  %s\n", s.total.Seconds()*1e3/float64(steps), float64(s.calls)/float64(steps), k)
	}
	fmt.Fprintf(w, "%8.3f ms/step in all primitives\n", sum.Seconds()*1e3/float64(steps))
}

func (t *Device) Name() string {
	t0 := time.Now()
	r := t.Device.Name()
	t.rec(t0, "Name")
	return r
}

func (t *Device) Info() device.Info {
	t0 := time.Now()
	r := t.Device.Info()
	t.rec(t0, "Info")
	return r
}

func (t *Device) Stats() device.MemStats {
	t0 := time.Now()
	r := t.Device.Stats()
	t.rec(t0, "Stats")
	return r
}

func (t *Device) Alloc(dt device.DType, n int) (device.Buffer, error) {
	t0 := time.Now()
	b, err := t.Device.Alloc(dt, n)
	t.rec(t0, "Alloc")
	return t.wrap(b), err
}

func (t *Device) Free(b device.Buffer) error {
	t0 := time.Now()
	err := t.Device.Free(u(b))
	t.rec(t0, "Free")
	return err
}

func (t *Device) View(b device.Buffer, off int, n int) (device.Buffer, error) {
	t0 := time.Now()
	b, err := t.Device.View(u(b), off, n)
	t.rec(t0, "View")
	return t.wrap(b), err
}

func (t *Device) WriteF32(dst device.Buffer, off int, src []float32) error {
	t0 := time.Now()
	err := t.Device.WriteF32(u(dst), off, src)
	t.rec(t0, "WriteF32 off=%v", off)
	return err
}

func (t *Device) ReadF32(dst []float32, src device.Buffer, off int) error {
	t0 := time.Now()
	err := t.Device.ReadF32(dst, u(src), off)
	t.rec(t0, "ReadF32 off=%v", off)
	return err
}

func (t *Device) WriteI32(dst device.Buffer, off int, src []int32) error {
	t0 := time.Now()
	err := t.Device.WriteI32(u(dst), off, src)
	t.rec(t0, "WriteI32 off=%v", off)
	return err
}

func (t *Device) ReadI32(dst []int32, src device.Buffer, off int) error {
	t0 := time.Now()
	err := t.Device.ReadI32(dst, u(src), off)
	t.rec(t0, "ReadI32 off=%v", off)
	return err
}

func (t *Device) Copy(dst device.Buffer, src device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Copy(u(dst), u(src), n)
	t.rec(t0, "Copy n=%v", n)
	return err
}

func (t *Device) Sync() error {
	t0 := time.Now()
	err := t.Device.Sync()
	t.rec(t0, "Sync")
	return err
}

func (t *Device) Close() error {
	t0 := time.Now()
	err := t.Device.Close()
	t.rec(t0, "Close")
	return err
}

func (t *Device) Gemm(transA bool, transB bool, m int, n int, k int, alpha float32, a device.Buffer, b device.Buffer, beta float32, c device.Buffer) error {
	t0 := time.Now()
	err := t.Device.Gemm(transA, transB, m, n, k, alpha, u(a), u(b), beta, u(c))
	t.rec(t0, "Gemm transA=%v transB=%v m=%v n=%v k=%v beta=%v", transA, transB, m, n, k, beta)
	return err
}

func (t *Device) AddBias(x device.Buffer, bias device.Buffer, rows int, cols int) error {
	t0 := time.Now()
	err := t.Device.AddBias(u(x), u(bias), rows, cols)
	t.rec(t0, "AddBias rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) BiasGrad(db device.Buffer, dy device.Buffer, rows int, cols int, beta float32) error {
	t0 := time.Now()
	err := t.Device.BiasGrad(u(db), u(dy), rows, cols, beta)
	t.rec(t0, "BiasGrad rows=%v cols=%v beta=%v", rows, cols, beta)
	return err
}

func (t *Device) Activate(act device.Activation, alpha float32, x device.Buffer, y device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Activate(act, alpha, u(x), u(y), n)
	t.rec(t0, "Activate n=%v", n)
	return err
}

func (t *Device) ActivateGrad(act device.Activation, alpha float32, x device.Buffer, y device.Buffer, dy device.Buffer, dx device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.ActivateGrad(act, alpha, u(x), u(y), u(dy), u(dx), n)
	t.rec(t0, "ActivateGrad x=%v y=%v dy=%v dx=%v n=%v", x != nil, y != nil, dy != nil, dx != nil, n)
	return err
}

func (t *Device) Softmax(x device.Buffer, y device.Buffer, rows int, cols int) error {
	t0 := time.Now()
	err := t.Device.Softmax(u(x), u(y), rows, cols)
	t.rec(t0, "Softmax rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) SoftmaxGrad(y device.Buffer, dy device.Buffer, dx device.Buffer, rows int, cols int) error {
	t0 := time.Now()
	err := t.Device.SoftmaxGrad(u(y), u(dy), u(dx), rows, cols)
	t.rec(t0, "SoftmaxGrad rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) Add(a device.Buffer, b device.Buffer, out device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Add(u(a), u(b), u(out), n)
	t.rec(t0, "Add n=%v", n)
	return err
}

func (t *Device) Sub(a device.Buffer, b device.Buffer, out device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Sub(u(a), u(b), u(out), n)
	t.rec(t0, "Sub n=%v", n)
	return err
}

func (t *Device) Mul(a device.Buffer, b device.Buffer, out device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Mul(u(a), u(b), u(out), n)
	t.rec(t0, "Mul n=%v", n)
	return err
}

func (t *Device) Scale(alpha float32, x device.Buffer, out device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Scale(alpha, u(x), u(out), n)
	t.rec(t0, "Scale n=%v", n)
	return err
}

func (t *Device) Axpy(alpha float32, x device.Buffer, y device.Buffer, n int) error {
	t0 := time.Now()
	err := t.Device.Axpy(alpha, u(x), u(y), n)
	t.rec(t0, "Axpy n=%v", n)
	return err
}

func (t *Device) Fill(x device.Buffer, n int, v float32) error {
	t0 := time.Now()
	err := t.Device.Fill(u(x), n, v)
	t.rec(t0, "Fill n=%v", n)
	return err
}

func (t *Device) Loss(kind device.LossKind, pred device.Buffer, target device.Buffer, rows int, cols int, loss device.Buffer, grad device.Buffer) error {
	t0 := time.Now()
	err := t.Device.Loss(kind, u(pred), u(target), rows, cols, u(loss), u(grad))
	t.rec(t0, "Loss rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) Sum(x device.Buffer, n int, out device.Buffer, beta float32) error {
	t0 := time.Now()
	err := t.Device.Sum(u(x), n, u(out), beta)
	t.rec(t0, "Sum n=%v beta=%v", n, beta)
	return err
}

func (t *Device) SumSquares(x device.Buffer, n int, out device.Buffer, beta float32) error {
	t0 := time.Now()
	err := t.Device.SumSquares(u(x), n, u(out), beta)
	t.rec(t0, "SumSquares n=%v beta=%v", n, beta)
	return err
}

func (t *Device) ClipByNorm(x device.Buffer, n int, sumSq device.Buffer, maxNorm float32) error {
	t0 := time.Now()
	err := t.Device.ClipByNorm(u(x), n, u(sumSq), maxNorm)
	t.rec(t0, "ClipByNorm n=%v", n)
	return err
}

func (t *Device) ArgmaxRows(x device.Buffer, rows int, cols int, out device.Buffer) error {
	t0 := time.Now()
	err := t.Device.ArgmaxRows(u(x), rows, cols, u(out))
	t.rec(t0, "ArgmaxRows rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) SGDStep(p device.Buffer, g device.Buffer, v device.Buffer, n int, cfg device.SGDConfig, step int) error {
	t0 := time.Now()
	err := t.Device.SGDStep(u(p), u(g), u(v), n, cfg, step)
	t.rec(t0, "SGDStep n=%v", n)
	return err
}

func (t *Device) AdamStep(p device.Buffer, g device.Buffer, m device.Buffer, v device.Buffer, n int, cfg device.AdamConfig, step int) error {
	t0 := time.Now()
	err := t.Device.AdamStep(u(p), u(g), u(m), u(v), n, cfg, step)
	t.rec(t0, "AdamStep n=%v", n)
	return err
}

func (t *Device) RandNormal(x device.Buffer, n int, mean float32, std float32, seed uint64, offset uint64) error {
	t0 := time.Now()
	err := t.Device.RandNormal(u(x), n, mean, std, seed, offset)
	t.rec(t0, "RandNormal n=%v", n)
	return err
}

func (t *Device) RandUniform(x device.Buffer, n int, lo float32, hi float32, seed uint64, offset uint64) error {
	t0 := time.Now()
	err := t.Device.RandUniform(u(x), n, lo, hi, seed, offset)
	t.rec(t0, "RandUniform n=%v", n)
	return err
}

func (t *Device) DropoutMask(mask device.Buffer, n int, p float32, seed uint64, offset uint64) error {
	t0 := time.Now()
	err := t.Device.DropoutMask(u(mask), n, p, seed, offset)
	t.rec(t0, "DropoutMask n=%v", n)
	return err
}

func (t *Device) GemmBatched(transA bool, transB bool, m int, n int, k int, alpha float32, a device.Buffer, strideA int, b device.Buffer, strideB int, beta float32, c device.Buffer, strideC int, batch int) error {
	t0 := time.Now()
	err := t.Device.GemmBatched(transA, transB, m, n, k, alpha, u(a), strideA, u(b), strideB, beta, u(c), strideC, batch)
	t.rec(t0, "GemmBatched transA=%v transB=%v m=%v n=%v k=%v strideA=%v strideB=%v beta=%v strideC=%v batch=%v", transA, transB, m, n, k, strideA, strideB, beta, strideC, batch)
	return err
}

func (t *Device) Im2Col(x device.Buffer, cols device.Buffer, g device.Window2D) error {
	t0 := time.Now()
	err := t.Device.Im2Col(u(x), u(cols), g)
	t.rec(t0, "Im2Col N%dC%dH%dW%dK%d", g.N, g.C, g.H, g.W, g.KH)
	return err
}

func (t *Device) Col2Im(cols device.Buffer, dx device.Buffer, g device.Window2D, beta float32) error {
	t0 := time.Now()
	err := t.Device.Col2Im(u(cols), u(dx), g, beta)
	t.rec(t0, "Col2Im N%dC%dH%dW%dK%d beta=%v", g.N, g.C, g.H, g.W, g.KH, beta)
	return err
}

func (t *Device) AddChannelBias(x device.Buffer, bias device.Buffer, outer int, channels int, inner int) error {
	t0 := time.Now()
	err := t.Device.AddChannelBias(u(x), u(bias), outer, channels, inner)
	t.rec(t0, "AddChannelBias outer=%v channels=%v inner=%v", outer, channels, inner)
	return err
}

func (t *Device) ChannelBiasGrad(db device.Buffer, dy device.Buffer, outer int, channels int, inner int, beta float32) error {
	t0 := time.Now()
	err := t.Device.ChannelBiasGrad(u(db), u(dy), outer, channels, inner, beta)
	t.rec(t0, "ChannelBiasGrad outer=%v channels=%v inner=%v beta=%v", outer, channels, inner, beta)
	return err
}

func (t *Device) MaxPool2D(x device.Buffer, y device.Buffer, idx device.Buffer, g device.Window2D) error {
	t0 := time.Now()
	err := t.Device.MaxPool2D(u(x), u(y), u(idx), g)
	t.rec(t0, "MaxPool2D N%dC%dH%dW%dK%d", g.N, g.C, g.H, g.W, g.KH)
	return err
}

func (t *Device) MaxPool2DGrad(dy device.Buffer, idx device.Buffer, dx device.Buffer, g device.Window2D) error {
	t0 := time.Now()
	err := t.Device.MaxPool2DGrad(u(dy), u(idx), u(dx), g)
	t.rec(t0, "MaxPool2DGrad N%dC%dH%dW%dK%d", g.N, g.C, g.H, g.W, g.KH)
	return err
}

func (t *Device) AvgPool2D(x device.Buffer, y device.Buffer, g device.Window2D) error {
	t0 := time.Now()
	err := t.Device.AvgPool2D(u(x), u(y), g)
	t.rec(t0, "AvgPool2D N%dC%dH%dW%dK%d", g.N, g.C, g.H, g.W, g.KH)
	return err
}

func (t *Device) AvgPool2DGrad(dy device.Buffer, dx device.Buffer, g device.Window2D) error {
	t0 := time.Now()
	err := t.Device.AvgPool2DGrad(u(dy), u(dx), g)
	t.rec(t0, "AvgPool2DGrad N%dC%dH%dW%dK%d", g.N, g.C, g.H, g.W, g.KH)
	return err
}

func (t *Device) AdaptiveAvgPool2D(x device.Buffer, y device.Buffer, n int, c int, h int, w int, outH int, outW int) error {
	t0 := time.Now()
	err := t.Device.AdaptiveAvgPool2D(u(x), u(y), n, c, h, w, outH, outW)
	t.rec(t0, "AdaptiveAvgPool2D n=%v c=%v h=%v w=%v outH=%v outW=%v", n, c, h, w, outH, outW)
	return err
}

func (t *Device) AdaptiveAvgPool2DGrad(dy device.Buffer, dx device.Buffer, n int, c int, h int, w int, outH int, outW int) error {
	t0 := time.Now()
	err := t.Device.AdaptiveAvgPool2DGrad(u(dy), u(dx), n, c, h, w, outH, outW)
	t.rec(t0, "AdaptiveAvgPool2DGrad n=%v c=%v h=%v w=%v outH=%v outW=%v", n, c, h, w, outH, outW)
	return err
}

func (t *Device) BatchNorm(x device.Buffer, y device.Buffer, gamma device.Buffer, beta device.Buffer, mean device.Buffer, invstd device.Buffer, runMean device.Buffer, runVar device.Buffer, outer int, channels int, inner int, training bool, cfg device.NormConfig) error {
	t0 := time.Now()
	err := t.Device.BatchNorm(u(x), u(y), u(gamma), u(beta), u(mean), u(invstd), u(runMean), u(runVar), outer, channels, inner, training, cfg)
	t.rec(t0, "BatchNorm outer=%v channels=%v inner=%v training=%v", outer, channels, inner, training)
	return err
}

func (t *Device) BatchNormGrad(x device.Buffer, dy device.Buffer, gamma device.Buffer, mean device.Buffer, invstd device.Buffer, dx device.Buffer, dgamma device.Buffer, dbeta device.Buffer, outer int, channels int, inner int, accum float32) error {
	t0 := time.Now()
	err := t.Device.BatchNormGrad(u(x), u(dy), u(gamma), u(mean), u(invstd), u(dx), u(dgamma), u(dbeta), outer, channels, inner, accum)
	t.rec(t0, "BatchNormGrad x=%v dy=%v gamma=%v mean=%v invstd=%v dx=%v dgamma=%v dbeta=%v outer=%v channels=%v inner=%v accum=%v", x != nil, dy != nil, gamma != nil, mean != nil, invstd != nil, dx != nil, dgamma != nil, dbeta != nil, outer, channels, inner, accum)
	return err
}

func (t *Device) LayerNorm(x device.Buffer, y device.Buffer, gamma device.Buffer, beta device.Buffer, mean device.Buffer, rstd device.Buffer, rows int, cols int, eps float32) error {
	t0 := time.Now()
	err := t.Device.LayerNorm(u(x), u(y), u(gamma), u(beta), u(mean), u(rstd), rows, cols, eps)
	t.rec(t0, "LayerNorm rows=%v cols=%v eps=%v", rows, cols, eps)
	return err
}

func (t *Device) LayerNormGrad(x device.Buffer, dy device.Buffer, gamma device.Buffer, mean device.Buffer, rstd device.Buffer, dx device.Buffer, dgamma device.Buffer, dbeta device.Buffer, rows int, cols int, accum float32) error {
	t0 := time.Now()
	err := t.Device.LayerNormGrad(u(x), u(dy), u(gamma), u(mean), u(rstd), u(dx), u(dgamma), u(dbeta), rows, cols, accum)
	t.rec(t0, "LayerNormGrad rows=%v cols=%v accum=%v", rows, cols, accum)
	return err
}

func (t *Device) Gather(table device.Buffer, idx device.Buffer, out device.Buffer, rows int, cols int, n int) error {
	t0 := time.Now()
	err := t.Device.Gather(u(table), u(idx), u(out), rows, cols, n)
	t.rec(t0, "Gather rows=%v cols=%v n=%v", rows, cols, n)
	return err
}

func (t *Device) ScatterAdd(dtable device.Buffer, idx device.Buffer, dout device.Buffer, rows int, cols int, n int) error {
	t0 := time.Now()
	err := t.Device.ScatterAdd(u(dtable), u(idx), u(dout), rows, cols, n)
	t.rec(t0, "ScatterAdd rows=%v cols=%v n=%v", rows, cols, n)
	return err
}

func (t *Device) SoftmaxMasked(x device.Buffer, y device.Buffer, rows int, cols int, scale float32, causal bool, qLen int) error {
	t0 := time.Now()
	err := t.Device.SoftmaxMasked(u(x), u(y), rows, cols, scale, causal, qLen)
	t.rec(t0, "SoftmaxMasked rows=%v cols=%v causal=%v qLen=%v", rows, cols, causal, qLen)
	return err
}

func (t *Device) SoftmaxMaskedGrad(y device.Buffer, dy device.Buffer, dx device.Buffer, rows int, cols int, scale float32) error {
	t0 := time.Now()
	err := t.Device.SoftmaxMaskedGrad(u(y), u(dy), u(dx), rows, cols, scale)
	t.rec(t0, "SoftmaxMaskedGrad rows=%v cols=%v", rows, cols)
	return err
}

func (t *Device) Permute4(x device.Buffer, y device.Buffer, dims [4]int, perm [4]int) error {
	t0 := time.Now()
	err := t.Device.Permute4(u(x), u(y), dims, perm)
	t.rec(t0, "Permute4")
	return err
}

func (t *Device) CrossEntropy(logits device.Buffer, labels device.Buffer, rows int, cols int, ignoreIndex int32, loss device.Buffer, grad device.Buffer) error {
	t0 := time.Now()
	err := t.Device.CrossEntropy(u(logits), u(labels), rows, cols, ignoreIndex, u(loss), u(grad))
	t.rec(t0, "CrossEntropy rows=%v cols=%v", rows, cols)
	return err
}
