//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of the fast float32 activations, eight lanes at a time.
// Each performs exactly the IEEE float32 operations of its scalar Go
// function in act.go, in the same order and without FMA, so the two agree
// bit for bit on non-NaN inputs (TestActVectorMatchesScalar); act.go
// explains the formulas and their accuracy. Every kernel takes n, a
// multiple of 8 and > 0; loads and stores are unaligned, and each lane is
// loaded before it is stored, so dst may be x (dx may be dy).
//
// Clamps use VMAXPS/VMINPS with the value as the instruction's second
// source (the first operand in Go's order): where it is NaN, x86 returns
// that operand, so a NaN passes through as the Go comparisons let it.
//
// Registers: Y12 = 1, Y13 = magic, Y14 = expHi, Y15 = expLo throughout;
// EXPF works in Y0–Y3.

// VEC8 defines name<> as eight copies of the 32-bit pattern v.
#define VEC8(name, v) \
	DATA name<>+0(SB)/4, v; \
	DATA name<>+4(SB)/4, v; \
	DATA name<>+8(SB)/4, v; \
	DATA name<>+12(SB)/4, v; \
	DATA name<>+16(SB)/4, v; \
	DATA name<>+20(SB)/4, v; \
	DATA name<>+24(SB)/4, v; \
	DATA name<>+28(SB)/4, v; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

VEC8(one, $0x3f800000)
VEC8(expLo, $0xc2d00000)
VEC8(expHi, $0x42b20000)
VEC8(log2e, $0x3fb8aa3b)
VEC8(magic, $0x4b400000)
VEC8(ln2Hi, $0x3f318000)
VEC8(ln2Lo, $0xb95e8083)
VEC8(expC2, $0x3efffffc)
VEC8(expC3, $0x3e2aaa47)
VEC8(expC4, $0x3d2aadab)
VEC8(expC5, $0x3c091dc7)
VEC8(expC6, $0x3ab43ec9)
VEC8(bias127, $0x0000007f)
VEC8(absMask, $0x7fffffff)
VEC8(signMask, $0x80000000)
VEC8(minus2, $0xc0000000)
VEC8(tanhT, $0x3f0ccccd)
VEC8(tanhP0, $0xbeaaaaa5)
VEC8(tanhP1, $0x3e088685)
VEC8(tanhP2, $0xbd5c9222)
VEC8(tanhP3, $0x3cac8eb9)
VEC8(tanhP4, $0xbbcd4576)
VEC8(geluA, $0xbfcc422a)
VEC8(geluB, $0xbd922279)
VEC8(geluC2, $0x3fcc422a)
VEC8(geluD, $0x3e5b33b6)
VEC8(geluXc, $0x41200000)
VEC8(geluXcNeg, $0xc1200000)
VEC8(siluXc, $0x42b00000)
VEC8(siluXcNeg, $0xc2b00000)
VEC8(eluT, $0xbeb17218)
VEC8(gerfQ0, $0x3df51c32)
VEC8(gerfQ1, $0x3df51bf5)
VEC8(gerfQ2, $0x3ddf1791)
VEC8(gerfQ3, $0x3db2373b)
VEC8(gerfQ4, $0x3d79812e)
VEC8(gerfQ5, $0x3c4faffb)
VEC8(gerfQ6, $0x3d19ddf5)
VEC8(gerfQ7, $0xbd8bed37)
VEC8(gerfQ8, $0x3c9c36b3)
VEC8(gerfQ9, $0x3b39c5c3)
VEC8(gerfP0, $0x3ecc422a)
VEC8(gerfP1, $0xbd882c14)
VEC8(gerfP2, $0x3c236634)
VEC8(gerfP3, $0xba9b6d9f)
VEC8(gerfP4, $0x38ecf30b)
VEC8(gerfP5, $0xb6facb59)
VEC8(gerfPt, $0x3e99999a)
VEC8(half, $0x3f000000)
VEC8(mhalf, $0xbf000000)
VEC8(invS2Pi, $0x3ecc422a)
VEC8(gerfXc, $0x41a00000)
VEC8(gerfXcNeg, $0xc1a00000)

// EXPINIT loads the registers EXPF relies on.
#define EXPINIT \
	VMOVUPS one<>(SB), Y12; \
	VMOVUPS magic<>(SB), Y13; \
	VMOVUPS expHi<>(SB), Y14; \
	VMOVUPS expLo<>(SB), Y15

// EXPF sets Y0 = expf(Y0); clobbers Y1–Y3.
#define EXPF \
	VMAXPS Y0, Y15, Y0; \
	VMINPS Y0, Y14, Y0; \
	VMULPS log2e<>(SB), Y0, Y1; \
	VADDPS Y13, Y1, Y1; \
	VSUBPS Y13, Y1, Y2; \
	VPSUBD Y13, Y1, Y1; \
	VMULPS ln2Hi<>(SB), Y2, Y3; \
	VSUBPS Y3, Y0, Y0; \
	VMULPS ln2Lo<>(SB), Y2, Y3; \
	VSUBPS Y3, Y0, Y0; \
	VMOVUPS expC6<>(SB), Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS expC5<>(SB), Y2, Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS expC4<>(SB), Y2, Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS expC3<>(SB), Y2, Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS expC2<>(SB), Y2, Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS Y12, Y2, Y2; \
	VMULPS Y0, Y2, Y2; \
	VADDPS Y12, Y2, Y2; \
	VPSRAD $1, Y1, Y3; \
	VPSUBD Y3, Y1, Y1; \
	VPADDD bias127<>(SB), Y3, Y3; \
	VPSLLD $23, Y3, Y3; \
	VPADDD bias127<>(SB), Y1, Y1; \
	VPSLLD $23, Y1, Y1; \
	VMULPS Y3, Y2, Y2; \
	VMULPS Y1, Y2, Y0

// func geluTanhAVX2(dst, x *float32, n int)
// dst = x / (1 + expf(x·(geluA + geluB·x²)))
TEXT ·geluTanhAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	EXPINIT
	XORQ AX, AX
gtloop:
	VMOVUPS (SI)(AX*4), Y4
	VMULPS Y4, Y4, Y5
	VMULPS geluB<>(SB), Y5, Y0
	VADDPS geluA<>(SB), Y0, Y0
	VMULPS Y0, Y4, Y0
	EXPF
	VADDPS Y12, Y0, Y0
	VDIVPS Y0, Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB gtloop
	VZEROUPPER
	RET

// func geluTanhGradAVX2(dx, x, dy *float32, n int)
// dx = dy · (s + q·((e·s)·s)), xc = clamp(x, ±geluXc), x2 = xc², e =
// expf(xc·(geluA + geluB·x2)), s = 1/(1+e), q = xc·(geluC2 + geluD·x2)
TEXT ·geluTanhGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	EXPINIT
	VMOVUPS geluXcNeg<>(SB), Y10
	VMOVUPS geluXc<>(SB), Y11
	XORQ AX, AX
ggloop:
	VMOVUPS (SI)(AX*4), Y4
	VMAXPS Y4, Y10, Y4
	VMINPS Y4, Y11, Y4
	VMULPS Y4, Y4, Y5
	VMULPS geluB<>(SB), Y5, Y0
	VADDPS geluA<>(SB), Y0, Y0
	VMULPS Y0, Y4, Y0
	EXPF
	VADDPS Y12, Y0, Y6
	VDIVPS Y6, Y12, Y6
	VMULPS geluD<>(SB), Y5, Y7
	VADDPS geluC2<>(SB), Y7, Y7
	VMULPS Y7, Y4, Y7
	VMULPS Y6, Y0, Y0
	VMULPS Y6, Y0, Y0
	VMULPS Y0, Y7, Y0
	VADDPS Y0, Y6, Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ggloop
	VZEROUPPER
	RET

// func tanhAVX2(dst, x *float32, n int)
// |x| < tanhT: x + (x·z)·P(z), z = x²; else sign(x)·(1−e)/(1+e), e = expf(−2|x|)
TEXT ·tanhAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	EXPINIT
	XORQ AX, AX
thloop:
	VMOVUPS (SI)(AX*4), Y4
	VANDPS absMask<>(SB), Y4, Y5
	VCMPPS $1, tanhT<>(SB), Y5, Y6
	VMULPS minus2<>(SB), Y5, Y0
	EXPF
	VSUBPS Y0, Y12, Y7
	VADDPS Y12, Y0, Y0
	VDIVPS Y0, Y7, Y7
	VANDPS signMask<>(SB), Y4, Y8
	VORPS Y8, Y7, Y7
	VMULPS Y4, Y4, Y9
	VMULPS tanhP4<>(SB), Y9, Y10
	VADDPS tanhP3<>(SB), Y10, Y10
	VMULPS Y9, Y10, Y10
	VADDPS tanhP2<>(SB), Y10, Y10
	VMULPS Y9, Y10, Y10
	VADDPS tanhP1<>(SB), Y10, Y10
	VMULPS Y9, Y10, Y10
	VADDPS tanhP0<>(SB), Y10, Y10
	VMULPS Y9, Y4, Y11
	VMULPS Y10, Y11, Y11
	VADDPS Y11, Y4, Y11
	VBLENDVPS Y6, Y11, Y7, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB thloop
	VZEROUPPER
	RET

// func sigmoidAVX2(dst, x *float32, n int)
// dst = 1 / (1 + expf(−x))
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	EXPINIT
	VMOVUPS signMask<>(SB), Y11
	XORQ AX, AX
sgloop:
	VXORPS (SI)(AX*4), Y11, Y0
	EXPF
	VADDPS Y12, Y0, Y0
	VDIVPS Y0, Y12, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB sgloop
	VZEROUPPER
	RET

// func siluAVX2(dst, x *float32, n int)
// dst = x / (1 + expf(−x))
TEXT ·siluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	EXPINIT
	VMOVUPS signMask<>(SB), Y11
	XORQ AX, AX
slloop:
	VMOVUPS (SI)(AX*4), Y4
	VXORPS Y4, Y11, Y0
	EXPF
	VADDPS Y12, Y0, Y0
	VDIVPS Y0, Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB slloop
	VZEROUPPER
	RET

// func siluGradAVX2(dx, x, dy *float32, n int)
// dx = dy · s·(1 + xc·(e·s)), xc = clamp(x, ±siluXc), e = expf(−xc), s = 1/(1+e)
TEXT ·siluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	EXPINIT
	VMOVUPS siluXcNeg<>(SB), Y9
	VMOVUPS siluXc<>(SB), Y10
	VMOVUPS signMask<>(SB), Y11
	XORQ AX, AX
sgrloop:
	VMOVUPS (SI)(AX*4), Y4
	VMAXPS Y4, Y9, Y4
	VMINPS Y4, Y10, Y4
	VXORPS Y4, Y11, Y0
	EXPF
	VADDPS Y12, Y0, Y6
	VDIVPS Y6, Y12, Y6
	VMULPS Y6, Y0, Y0
	VMULPS Y0, Y4, Y0
	VADDPS Y12, Y0, Y0
	VMULPS Y0, Y6, Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB sgrloop
	VZEROUPPER
	RET

// func expScaledAVX2(dst, x *float32, n int, scale, shift float32)
// dst = expf(x·scale − shift)
TEXT ·expScaledAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y10
	VBROADCASTSS shift+28(FP), Y11
	EXPINIT
	XORQ AX, AX
exloop:
	VMULPS (SI)(AX*4), Y10, Y0
	VSUBPS Y11, Y0, Y0
	EXPF
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB exloop
	VZEROUPPER
	RET

// func eluAVX2(dst, x *float32, n int, alpha float32)
// dst = x where 0 < x, else alpha·em1, em1 = x·(1 + x·q(x)) where eluT ≤ x
// (q the tail of expf's polynomial), else expf(x) − 1
TEXT ·eluAVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS alpha+24(FP), Y10
	EXPINIT
	VXORPS Y11, Y11, Y11
	VMOVUPS eluT<>(SB), Y5
	XORQ AX, AX
eluloop:
	VMOVUPS (SI)(AX*4), Y4
	VCMPPS $1, Y4, Y11, Y6
	VCMPPS $2, Y4, Y5, Y7
	VMOVUPS Y4, Y0
	EXPF
	VSUBPS Y12, Y0, Y8
	VMULPS expC6<>(SB), Y4, Y9
	VADDPS expC5<>(SB), Y9, Y9
	VMULPS Y4, Y9, Y9
	VADDPS expC4<>(SB), Y9, Y9
	VMULPS Y4, Y9, Y9
	VADDPS expC3<>(SB), Y9, Y9
	VMULPS Y4, Y9, Y9
	VADDPS expC2<>(SB), Y9, Y9
	VMULPS Y4, Y9, Y9
	VADDPS Y12, Y9, Y9
	VMULPS Y9, Y4, Y9
	VBLENDVPS Y7, Y9, Y8, Y8
	VMULPS Y10, Y8, Y8
	VBLENDVPS Y6, Y4, Y8, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB eluloop
	VZEROUPPER
	RET

// func eluGradAVX2(dx, x, dy *float32, n int, alpha float32)
// dx = dy where 0 < x, else dy·(alpha·expf(x))
TEXT ·eluGradAVX2(SB), NOSPLIT, $0-36
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS alpha+32(FP), Y10
	EXPINIT
	VXORPS Y11, Y11, Y11
	XORQ AX, AX
elugloop:
	VMOVUPS (SI)(AX*4), Y0
	VCMPPS $1, Y0, Y11, Y6
	EXPF
	VMULPS Y10, Y0, Y0
	VMOVUPS (DX)(AX*4), Y5
	VMULPS Y0, Y5, Y0
	VBLENDVPS Y6, Y5, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB elugloop
	VZEROUPPER
	RET

// GERFTAIL: from Y4 = x, Y5 = |x|, Y11 = 0, sets Y9 = Φ(x) of the tail
// form (x < 0: e·r, else 1 − e·r) and Y0 = e = expf(−a²/2); clobbers
// Y1–Y3, Y7, Y8, Y10.
#define GERFTAIL \
	VCMPPS $1, Y11, Y4, Y7; \
	VMULPS gerfPt<>(SB), Y5, Y8; \
	VADDPS Y12, Y8, Y8; \
	VDIVPS Y8, Y12, Y8; \
	VMOVUPS gerfQ9<>(SB), Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ8<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ7<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ6<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ5<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ4<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ3<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ2<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ1<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VADDPS gerfQ0<>(SB), Y9, Y9; \
	VMULPS Y8, Y9, Y9; \
	VMULPS Y5, Y5, Y0; \
	VMULPS mhalf<>(SB), Y0, Y0; \
	EXPF; \
	VMULPS Y9, Y0, Y10; \
	VSUBPS Y10, Y12, Y9; \
	VBLENDVPS Y7, Y10, Y9, Y9

// GERFSMALL: from Y4 = x, sets Y10 = 0.5 + x·P(x²); clobbers Y8.
#define GERFSMALL \
	VMULPS Y4, Y4, Y8; \
	VMULPS gerfP5<>(SB), Y8, Y10; \
	VADDPS gerfP4<>(SB), Y10, Y10; \
	VMULPS Y8, Y10, Y10; \
	VADDPS gerfP3<>(SB), Y10, Y10; \
	VMULPS Y8, Y10, Y10; \
	VADDPS gerfP2<>(SB), Y10, Y10; \
	VMULPS Y8, Y10, Y10; \
	VADDPS gerfP1<>(SB), Y10, Y10; \
	VMULPS Y8, Y10, Y10; \
	VADDPS gerfP0<>(SB), Y10, Y10; \
	VMULPS Y10, Y4, Y10; \
	VADDPS half<>(SB), Y10, Y10

// func geluAVX2(dst, x *float32, n int)
// dst = x·Φ(x): Φ from GERFSMALL where |x| < 1, else GERFTAIL
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	EXPINIT
	VXORPS Y11, Y11, Y11
	XORQ AX, AX
geloop:
	VMOVUPS (SI)(AX*4), Y4
	VANDPS absMask<>(SB), Y4, Y5
	VCMPPS $1, Y12, Y5, Y6
	GERFTAIL
	GERFSMALL
	VBLENDVPS Y6, Y10, Y9, Y9
	VMULPS Y9, Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB geloop
	VZEROUPPER
	RET

// func geluGradAVX2(dx, x, dy *float32, n int)
// dx = dy · (Φ(xc) + xc·(e·invS2Pi)), xc = clamp(x, ±20)
TEXT ·geluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	EXPINIT
	VXORPS Y11, Y11, Y11
	XORQ AX, AX
gegloop:
	VMOVUPS (SI)(AX*4), Y4
	VMOVUPS gerfXcNeg<>(SB), Y1
	VMAXPS Y4, Y1, Y4
	VMOVUPS gerfXc<>(SB), Y1
	VMINPS Y4, Y1, Y4
	VANDPS absMask<>(SB), Y4, Y5
	VCMPPS $1, Y12, Y5, Y6
	GERFTAIL
	GERFSMALL
	VBLENDVPS Y6, Y10, Y9, Y9
	VMULPS invS2Pi<>(SB), Y0, Y0
	VMULPS Y0, Y4, Y0
	VADDPS Y0, Y9, Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB gegloop
	VZEROUPPER
	RET
