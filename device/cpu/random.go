package cpu

import (
	"math"

	"github.com/kilnml/kiln/device"
)

// RandNormal sets x[i] = device.NormalScaled(seed, offset+i, mean, std).
func (d *Device) RandNormal(x device.Buffer, n int, mean, std float32, seed, offset uint64) error {
	const op = "RandNormal"
	if d.closed {
		return errClosed(op)
	}
	if !(std >= 0) {
		return device.Errorf(op, "std", device.ErrInvalid, "expected std ≥ 0, got %g", std)
	}
	return d.rand(op, opRandNormal, x, n, mean, std, seed, offset)
}

// RandUniform sets x[i] = device.UniformScaled(seed, offset+i, lo, hi).
func (d *Device) RandUniform(x device.Buffer, n int, lo, hi float32, seed, offset uint64) error {
	const op = "RandUniform"
	if d.closed {
		return errClosed(op)
	}
	if !(lo <= hi) {
		return device.Errorf(op, "lo", device.ErrInvalid, "expected lo ≤ hi, got lo %g, hi %g", lo, hi)
	}
	return d.rand(op, opRandUniform, x, n, lo, hi, seed, offset)
}

// DropoutMask sets mask[i] = device.DropoutAt(seed, offset+i, p).
func (d *Device) DropoutMask(mask device.Buffer, n int, p float32, seed, offset uint64) error {
	const op = "DropoutMask"
	if d.closed {
		return errClosed(op)
	}
	if !(p >= 0 && p < 1) {
		return device.Errorf(op, "p", device.ErrInvalid, "expected a drop probability 0 ≤ p < 1, got %g", p)
	}
	return d.rand(op, opDropout, mask, n, p, 0, seed, offset)
}

func (d *Device) rand(op string, code opcode, x device.Buffer, n int, s0, s1 float32, seed, offset uint64) error {
	if d.closed {
		return errClosed(op)
	}
	if n < 1 {
		return device.CheckDims(op, "n", n)
	}
	xf, err := d.f32(op, "x", x, n)
	if err != nil {
		return err
	}
	d.k = kern{op: code, a: xf, s0: s0, s1: s1, seed: seed, off: offset}
	d.launch(n, trGrain)
	d.release()
	return nil
}

// random fills elements [lo, hi) computing each Philox block once for the
// (up to) four elements it serves.
func (k *kern) random(lo, hi int) {
	x := k.a
	seed := k.seed
	i := lo
	for i < hi {
		pos := k.off + uint64(i)
		lane := int(pos % 4)
		w := device.PhiloxBlock(seed, pos/4)
		cnt := min(4-lane, hi-i)
		out := x[i : i+cnt]
		switch k.op {
		case opRandUniform:
			lo64, span := float64(k.s0), float64(k.s1)-float64(k.s0)
			for j := range out {
				u := float64(device.UnitFloat(w[lane+j]))
				out[j] = float32(lo64 + span*u)
			}
		case opDropout:
			p := k.s0
			keep := 1 / (1 - p)
			for j := range out {
				if device.UnitFloat(w[lane+j]) >= p {
					out[j] = keep
				} else {
					out[j] = 0
				}
			}
		case opRandNormal:
			mean, std := float64(k.s0), float64(k.s1)
			// Lanes (0,1) and (2,3) each share one Box–Muller pair; the
			// expressions are exactly device.normal64's.
			for pair := lane &^ 1; pair < lane+cnt; pair += 2 {
				u1 := float64(device.UnitFloat(w[pair]))
				u2 := float64(device.UnitFloat(w[pair+1]))
				r := math.Sqrt(-2 * math.Log(u1))
				if pair >= lane {
					out[pair-lane] = float32(mean + std*(r*math.Cos(2*math.Pi*u2)))
				}
				if pair+1 < lane+cnt {
					out[pair+1-lane] = float32(mean + std*(r*math.Sin(2*math.Pi*u2)))
				}
			}
		}
		i += cnt
	}
}
