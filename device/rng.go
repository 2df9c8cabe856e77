package device

import "math"

// The counter-based generator every backend shares: Philox4x32-10
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// A number is a pure function of (seed, position), so a kernel thread can
// compute its element without state, and the CPU and every GPU produce the
// same stream. Position p lives in Philox block p/4, lane p%4; the key is
// the seed. These functions are the reference the CUDA kernels in
// kernels/random.cu reproduce and the conformance suite checks.

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

// Philox4x32 applies ten rounds of Philox4x32 to counter ctr with key key.
func Philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	for r := 0; r < 10; r++ {
		p0 := uint64(philoxM0) * uint64(ctr[0])
		p1 := uint64(philoxM1) * uint64(ctr[2])
		ctr = [4]uint32{
			uint32(p1>>32) ^ ctr[1] ^ key[0], uint32(p1),
			uint32(p0>>32) ^ ctr[3] ^ key[1], uint32(p0),
		}
		key[0] += philoxW0
		key[1] += philoxW1
	}
	return ctr
}

// PhiloxBlock returns the four 32-bit words of block number blk for seed.
func PhiloxBlock(seed, blk uint64) [4]uint32 {
	return Philox4x32([4]uint32{uint32(blk), uint32(blk >> 32), 0, 0}, [2]uint32{uint32(seed), uint32(seed >> 32)})
}

// UnitFloat maps a 32-bit word to a float32 in the open interval (0, 1):
// its top 24 bits plus one half, times 2⁻²⁴. Every value is exact in
// float32, so every backend agrees bit for bit.
func UnitFloat(w uint32) float32 {
	return (float32(w>>8) + 0.5) * (1.0 / (1 << 24))
}

// UniformAt is the uniform (0, 1) number at position pos of seed's stream.
func UniformAt(seed, pos uint64) float32 {
	return UnitFloat(PhiloxBlock(seed, pos/4)[pos%4])
}

// NormalAt is the standard normal number at position pos of seed's stream.
// Positions 2j and 2j+1 share one Box-Muller pair, made from lanes 2j%4 and
// 2j%4+1 of their block: the even position takes the cosine, the odd one
// the sine. The transform runs in float64 and rounds once to float32, so
// backends agree except in the rare case where their float64 log, sin or
// cos differ in the last bit right at a float32 rounding boundary.
func NormalAt(seed, pos uint64) float32 {
	return float32(normal64(PhiloxBlock(seed, pos/4), pos%4))
}

func normal64(w [4]uint32, lane uint64) float64 {
	base := lane &^ 1
	u1 := float64(UnitFloat(w[base]))
	u2 := float64(UnitFloat(w[base+1]))
	r := math.Sqrt(-2 * math.Log(u1))
	if lane&1 == 0 {
		return r * math.Cos(2*math.Pi*u2)
	}
	return r * math.Sin(2*math.Pi*u2)
}

// NormalScaled is mean + std·NormalAt(seed, pos), with the affine step in
// float64 and one rounding, as the kernels do it.
func NormalScaled(seed, pos uint64, mean, std float32) float32 {
	return float32(float64(mean) + float64(std)*normal64(PhiloxBlock(seed, pos/4), pos%4))
}

// UniformScaled is lo + (hi-lo)·UniformAt(seed, pos), in float64 with one
// rounding.
func UniformScaled(seed, pos uint64, lo, hi float32) float32 {
	u := float64(UniformAt(seed, pos))
	return float32(float64(lo) + (float64(hi)-float64(lo))*u)
}

// DropoutAt is the dropout mask value at position pos: 1/(1-p) when the
// uniform draw is at least p, else 0.
func DropoutAt(seed, pos uint64, p float32) float32 {
	if UniformAt(seed, pos) >= p {
		return 1 / (1 - p)
	}
	return 0
}
