//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 kernels of rows.go, eight float64 lanes per register: exactly
// the float64 operations of the Go in rows.go, in the same order and
// without FMA (float32→float64 conversions and the product of two float32
// are exact; the one float64→float32 rounding is to nearest even, as Go's
// conversion). Loads and stores are unaligned; each lane is loaded before
// it is stored, so an output may alias an input. The masked tails neither
// fault nor change memory past n.

// func affineRowAVX512(x, y, gamma, beta *float32, n int, m, s float64)
TEXT ·affineRowAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ gamma+16(FP), R8
	MOVQ beta+24(FP), R9
	MOVQ n+32(FP), CX
	VBROADCASTSD m+40(FP), Z13
	VBROADCASTSD s+48(FP), Z14
	MOVQ CX, DX
	SHRQ $3, DX
	JZ   ar5tail

ar5loop:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 0(R8), Z1
	VCVTPS2PD 0(R9), Z2
	VSUBPD Z13, Z0, Z0
	VMULPD Z14, Z0, Z0
	VMULPD Z1, Z0, Z0
	VADDPD Z2, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ DX
	JNZ  ar5loop

ar5tail:
	ANDQ $7, CX
	JZ   ar5done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VCVTPS2PD.Z 0(SI), K1, Z0
	VCVTPS2PD.Z 0(R8), K1, Z1
	VCVTPS2PD.Z 0(R9), K1, Z2
	VSUBPD Z13, Z0, Z0
	VMULPD Z14, Z0, Z0
	VMULPD Z1, Z0, Z0
	VADDPD Z2, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMOVUPS Z0, K1, 0(DI)

ar5done:
	VZEROUPPER
	RET

// GRSTEP512 adds g = dy·gamma of the eight float32 at off(DI) and off(R8)
// to ga and g·(x − Z15) (x at off(SI)) to gx.
#define GRSTEP512(off, tx, tg, tw, ga, gx) \
	VCVTPS2PD off(DI), tg; \
	VCVTPS2PD off(R8), tw; \
	VMULPD tw, tg, tg; \
	VCVTPS2PD off(SI), tx; \
	VADDPD tg, ga, ga; \
	VSUBPD Z15, tx, tx; \
	VMULPD tg, tx, tx; \
	VADDPD tx, gx, gx

// func gradSumsRowAVX512(x, dy, gamma *float32, n int, m float64, sg, sgx *float64)
//
// Chain c is lane c mod 8 of Z(c/8): Z0–Z1 (Σ g) and Z2–Z3 (Σ g·(x − m)).
TEXT ·gradSumsRowAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ gamma+16(FP), R8
	MOVQ n+24(FP), CX
	VBROADCASTSD m+32(FP), Z15
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	MOVQ CX, DX
	SHRQ $4, DX
	JZ   gr5tail

gr5loop:
	GRSTEP512(0, Z8, Z9, Z12, Z0, Z2)
	GRSTEP512(32, Z10, Z11, Z13, Z1, Z3)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	DECQ DX
	JNZ  gr5loop

gr5tail:
	ANDQ $15, CX
	JZ   gr5reduce
	GRSTEP512(0, Z8, Z9, Z12, Z0, Z2)

gr5reduce:
	// Σ g·(x − m): v = Z2 + Z3, halved into X4.
	VADDPD Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPD Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VADDPD X3, X2, X2
	VPERMILPD $1, X2, X3
	VADDSD X3, X2, X4
	// Σ g: v = Z0 + Z1, halved into X0.
	VADDPD Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	MOVQ sg+40(FP), AX
	MOVSD X0, (AX)
	MOVQ sgx+48(FP), AX
	MOVSD X4, (AX)
	VZEROUPPER
	RET

// func gradApplyRowAVX512(x, dy, gamma, dx *float32, n int, m, a, am1, k1 float64)
TEXT ·gradApplyRowAVX512(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ gamma+16(FP), R9
	MOVQ dx+24(FP), R8
	MOVQ n+32(FP), CX
	VBROADCASTSD m+40(FP), Z12
	VBROADCASTSD a+48(FP), Z13
	VBROADCASTSD am1+56(FP), Z14
	VBROADCASTSD k1+64(FP), Z15
	MOVQ CX, DX
	SHRQ $3, DX
	JZ   ga5tail

ga5loop:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 0(DI), Z2
	VCVTPS2PD 0(R9), Z3
	VSUBPD Z12, Z0, Z0
	VMULPD Z15, Z0, Z0
	VADDPD Z14, Z0, Z0
	VMULPD Z3, Z2, Z2
	VMULPD Z13, Z2, Z2
	VSUBPD Z0, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Y2, 0(R8)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R9
	ADDQ $32, R8
	DECQ DX
	JNZ  ga5loop

ga5tail:
	ANDQ $7, CX
	JZ   ga5done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VCVTPS2PD.Z 0(SI), K1, Z0
	VCVTPS2PD.Z 0(DI), K1, Z2
	VCVTPS2PD.Z 0(R9), K1, Z3
	VSUBPD Z12, Z0, Z0
	VMULPD Z15, Z0, Z0
	VADDPD Z14, Z0, Z0
	VMULPD Z3, Z2, Z2
	VMULPD Z13, Z2, Z2
	VSUBPD Z0, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Z2, K1, 0(R8)

ga5done:
	VZEROUPPER
	RET

// func colSumsAVX512(x, dy *float32, sdy, sdyx *float64, n int, m, rs float64)
TEXT ·colSumsAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ sdy+16(FP), R8
	MOVQ sdyx+24(FP), R9
	MOVQ n+32(FP), CX
	VBROADCASTSD m+40(FP), Z14
	VBROADCASTSD rs+48(FP), Z15
	MOVQ CX, DX
	SHRQ $3, DX
	JZ   cs5tail

cs5loop:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 0(DI), Z1
	VMOVUPD 0(R8), Z2
	VMOVUPD 0(R9), Z3
	VSUBPD Z14, Z0, Z0
	VMULPD Z15, Z0, Z0
	VMULPD Z1, Z0, Z0
	VADDPD Z1, Z2, Z2
	VADDPD Z0, Z3, Z3
	VMOVUPD Z2, 0(R8)
	VMOVUPD Z3, 0(R9)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $64, R8
	ADDQ $64, R9
	DECQ DX
	JNZ  cs5loop

cs5tail:
	ANDQ $7, CX
	JZ   cs5done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VCVTPS2PD.Z 0(SI), K1, Z0
	VCVTPS2PD.Z 0(DI), K1, Z1
	VMOVUPD.Z 0(R8), K1, Z2
	VMOVUPD.Z 0(R9), K1, Z3
	VSUBPD Z14, Z0, Z0
	VMULPD Z15, Z0, Z0
	VMULPD Z1, Z0, Z0
	VADDPD Z1, Z2, Z2
	VADDPD Z0, Z3, Z3
	VMOVUPD Z2, K1, 0(R8)
	VMOVUPD Z3, K1, 0(R9)

cs5done:
	VZEROUPPER
	RET
