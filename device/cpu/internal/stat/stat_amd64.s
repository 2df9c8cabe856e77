//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of stat.go, four float64 lanes per register. Each performs
// exactly the float64 operations of its Go twin in stat.go, in the same
// order and without FMA (conversions float32→float64 are exact, the one
// float64→float32 rounding is to nearest even as Go's conversion), so the
// two agree bit for bit. n is a multiple of 8 and > 0 (the AVX-512
// Affine and GradApply kernels: any n > 0, the tail masked); loads and stores
// are unaligned; each lane is loaded before it is stored, so an output may
// alias an input.
//
// Sums: chain c of the package comment is lane c mod 4 of register
// Y(c/4): Y0–Y7 hold the 32 chains of Sum and SqDev; Y0–Y3 (Σ g) and
// Y4–Y7 (Σ g·(x − m)) the 16 chains of each sum of GradSums.

// SUMSTEP adds the four float32 at off(SI), widened, to acc.
#define SUMSTEP(off, tmp, acc) \
	VCVTPS2PD off(SI), tmp; \
	VADDPD tmp, acc, acc

// SQSTEP adds (x − Y15)² of the four float32 at off(SI) to acc.
#define SQSTEP(off, tmp, acc) \
	VCVTPS2PD off(SI), tmp; \
	VSUBPD Y15, tmp, tmp; \
	VMULPD tmp, tmp, tmp; \
	VADDPD tmp, acc, acc

// GSTEP adds g of the four float32 at off(DI) to ga and g·(x − Y15) (x at
// off(SI)) to gx.
#define GSTEP(off, tx, tg, ga, gx) \
	VCVTPS2PD off(DI), tg; \
	VCVTPS2PD off(SI), tx; \
	VADDPD tg, ga, ga; \
	VSUBPD Y15, tx, tx; \
	VMULPD tg, tx, tx; \
	VADDPD tx, gx, gx

// HALVE8 leaves in X0 the halving of the eight chains in Y0 (0–3) and
// Y1 (4–7): w = Y0 + Y1, u_j = w_j + w_{j+2}, u_0 + u_1. Uses X1.
#define HALVE8 \
	VADDPD Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPD X1, X0, X0; \
	VPERMILPD $1, X0, X1; \
	VADDSD X1, X0, X0

// func sumAVX2(x *float32, n int) float64
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   sumtail

sumloop:
	SUMSTEP(0, Y8, Y0)
	SUMSTEP(16, Y9, Y1)
	SUMSTEP(32, Y10, Y2)
	SUMSTEP(48, Y11, Y3)
	SUMSTEP(64, Y8, Y4)
	SUMSTEP(80, Y9, Y5)
	SUMSTEP(96, Y10, Y6)
	SUMSTEP(112, Y11, Y7)
	ADDQ $128, SI
	DECQ DX
	JNZ  sumloop

sumtail:
	ANDQ $31, CX
	CMPQ CX, $8
	JB   sumreduce
	SUMSTEP(0, Y8, Y0)
	SUMSTEP(16, Y9, Y1)
	CMPQ CX, $16
	JB   sumreduce
	SUMSTEP(32, Y10, Y2)
	SUMSTEP(48, Y11, Y3)
	CMPQ CX, $24
	JB   sumreduce
	SUMSTEP(64, Y8, Y4)
	SUMSTEP(80, Y9, Y5)

sumreduce:
	VADDPD Y2, Y0, Y0
	VADDPD Y6, Y4, Y4
	VADDPD Y4, Y0, Y0
	VADDPD Y3, Y1, Y1
	VADDPD Y7, Y5, Y5
	VADDPD Y5, Y1, Y1
	HALVE8
	MOVSD X0, ret+16(FP)
	VZEROUPPER
	RET

// func sqDevAVX2(x *float32, n int, m float64) float64
TEXT ·sqDevAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD m+16(FP), Y15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   sqtail

sqloop:
	SQSTEP(0, Y8, Y0)
	SQSTEP(16, Y9, Y1)
	SQSTEP(32, Y10, Y2)
	SQSTEP(48, Y11, Y3)
	SQSTEP(64, Y12, Y4)
	SQSTEP(80, Y13, Y5)
	SQSTEP(96, Y8, Y6)
	SQSTEP(112, Y9, Y7)
	ADDQ $128, SI
	DECQ DX
	JNZ  sqloop

sqtail:
	ANDQ $31, CX
	CMPQ CX, $8
	JB   sqreduce
	SQSTEP(0, Y8, Y0)
	SQSTEP(16, Y9, Y1)
	CMPQ CX, $16
	JB   sqreduce
	SQSTEP(32, Y10, Y2)
	SQSTEP(48, Y11, Y3)
	CMPQ CX, $24
	JB   sqreduce
	SQSTEP(64, Y12, Y4)
	SQSTEP(80, Y13, Y5)

sqreduce:
	VADDPD Y2, Y0, Y0
	VADDPD Y6, Y4, Y4
	VADDPD Y4, Y0, Y0
	VADDPD Y3, Y1, Y1
	VADDPD Y7, Y5, Y5
	VADDPD Y5, Y1, Y1
	HALVE8
	MOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func gradSumsAVX2(x, dy *float32, n int, m float64, sg, sgx *float64)
TEXT ·gradSumsAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Y15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	MOVQ CX, DX
	SHRQ $4, DX
	JZ   gtail

gloop:
	GSTEP(0, Y8, Y9, Y0, Y4)
	GSTEP(16, Y10, Y11, Y1, Y5)
	GSTEP(32, Y12, Y13, Y2, Y6)
	GSTEP(48, Y8, Y9, Y3, Y7)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ  gloop

gtail:
	ANDQ $15, CX
	JZ   greduce
	GSTEP(0, Y8, Y9, Y0, Y4)
	GSTEP(16, Y10, Y11, Y1, Y5)

greduce:
	// Σ g·(x − m): v = (Y4 + Y6, Y5 + Y7), halved into X4.
	VADDPD Y6, Y4, Y4
	VADDPD Y7, Y5, Y5
	VADDPD Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPD X5, X4, X4
	VPERMILPD $1, X4, X5
	VADDSD X5, X4, X4
	// Σ g: v = (Y0 + Y2, Y1 + Y3).
	VADDPD Y2, Y0, Y0
	VADDPD Y3, Y1, Y1
	HALVE8
	MOVQ sg+32(FP), AX
	MOVSD X0, (AX)
	MOVQ sgx+40(FP), AX
	MOVSD X4, (AX)
	VZEROUPPER
	RET

// func affineAVX2(x, y *float32, n int, m, s, b float64)
TEXT ·affineAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Y13
	VBROADCASTSD s+32(FP), Y14
	VBROADCASTSD b+40(FP), Y15
	SHRQ $3, CX

affloop:
	VCVTPS2PD 0(SI), Y0
	VCVTPS2PD 16(SI), Y1
	VSUBPD Y13, Y0, Y0
	VSUBPD Y13, Y1, Y1
	VMULPD Y14, Y0, Y0
	VMULPD Y14, Y1, Y1
	VADDPD Y15, Y0, Y0
	VADDPD Y15, Y1, Y1
	VCVTPD2PSY Y0, X0
	VCVTPD2PSY Y1, X1
	VMOVUPS X0, 0(DI)
	VMOVUPS X1, 16(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  affloop
	VZEROUPPER
	RET

// func gradApplyAVX2(x, dy, dx *float32, n int, m, a, am1, k1 float64)
TEXT ·gradApplyAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ dx+16(FP), R8
	MOVQ n+24(FP), CX
	VBROADCASTSD m+32(FP), Y12
	VBROADCASTSD a+40(FP), Y13
	VBROADCASTSD am1+48(FP), Y14
	VBROADCASTSD k1+56(FP), Y15
	SHRQ $3, CX

gaploop:
	VCVTPS2PD 0(SI), Y0
	VCVTPS2PD 16(SI), Y1
	VCVTPS2PD 0(DI), Y2
	VCVTPS2PD 16(DI), Y3
	VSUBPD Y12, Y0, Y0
	VSUBPD Y12, Y1, Y1
	VMULPD Y15, Y0, Y0
	VMULPD Y15, Y1, Y1
	VADDPD Y14, Y0, Y0
	VADDPD Y14, Y1, Y1
	VMULPD Y13, Y2, Y2
	VMULPD Y13, Y3, Y3
	VSUBPD Y0, Y2, Y2
	VSUBPD Y1, Y3, Y3
	VCVTPD2PSY Y2, X2
	VCVTPD2PSY Y3, X3
	VMOVUPS X2, 0(R8)
	VMOVUPS X3, 16(R8)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8
	DECQ CX
	JNZ  gaploop
	VZEROUPPER
	RET

// AVX-512 kernels: the same operations, eight float64 lanes per register.
// Chain c is lane c mod 8 of Z(c/8): Z0–Z3 hold the 32 chains of Sum and
// SqDev; Z0–Z1 (Σ g) and Z2–Z3 (Σ g·(x − m)) the 16 of each GradSums sum.

// SUMSTEP512 adds the eight float32 at off(SI), widened, to acc.
#define SUMSTEP512(off, tmp, acc) \
	VCVTPS2PD off(SI), tmp; \
	VADDPD tmp, acc, acc

// SQSTEP512 adds (x − Z15)² of the eight float32 at off(SI) to acc.
#define SQSTEP512(off, tmp, acc) \
	VCVTPS2PD off(SI), tmp; \
	VSUBPD Z15, tmp, tmp; \
	VMULPD tmp, tmp, tmp; \
	VADDPD tmp, acc, acc

// GSTEP512 adds g of the eight float32 at off(DI) to ga and g·(x − Z15)
// (x at off(SI)) to gx.
#define GSTEP512(off, tx, tg, ga, gx) \
	VCVTPS2PD off(DI), tg; \
	VCVTPS2PD off(SI), tx; \
	VADDPD tg, ga, ga; \
	VSUBPD Z15, tx, tx; \
	VMULPD tg, tx, tx; \
	VADDPD tx, gx, gx

// HALVE512 leaves in X0 the halving of the eight chains in Z0: w_j = v_j +
// v_{j+4} (the two halves of Z0), then HALVE8's steps. Uses Y1.
#define HALVE512 \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPD Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPD X1, X0, X0; \
	VPERMILPD $1, X0, X1; \
	VADDSD X1, X0, X0

// func sumAVX512(x *float32, n int) float64
TEXT ·sumAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   sum5tail

sum5loop:
	SUMSTEP512(0, Z8, Z0)
	SUMSTEP512(32, Z9, Z1)
	SUMSTEP512(64, Z10, Z2)
	SUMSTEP512(96, Z11, Z3)
	ADDQ $128, SI
	DECQ DX
	JNZ  sum5loop

sum5tail:
	ANDQ $31, CX
	CMPQ CX, $8
	JB   sum5reduce
	SUMSTEP512(0, Z8, Z0)
	CMPQ CX, $16
	JB   sum5reduce
	SUMSTEP512(32, Z9, Z1)
	CMPQ CX, $24
	JB   sum5reduce
	SUMSTEP512(64, Z10, Z2)

sum5reduce:
	VADDPD Z1, Z0, Z0
	VADDPD Z3, Z2, Z2
	VADDPD Z2, Z0, Z0
	HALVE512
	MOVSD X0, ret+16(FP)
	VZEROUPPER
	RET

// func sqDevAVX512(x *float32, n int, m float64) float64
TEXT ·sqDevAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD m+16(FP), Z15
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   sq5tail

sq5loop:
	SQSTEP512(0, Z8, Z0)
	SQSTEP512(32, Z9, Z1)
	SQSTEP512(64, Z10, Z2)
	SQSTEP512(96, Z11, Z3)
	ADDQ $128, SI
	DECQ DX
	JNZ  sq5loop

sq5tail:
	ANDQ $31, CX
	CMPQ CX, $8
	JB   sq5reduce
	SQSTEP512(0, Z8, Z0)
	CMPQ CX, $16
	JB   sq5reduce
	SQSTEP512(32, Z9, Z1)
	CMPQ CX, $24
	JB   sq5reduce
	SQSTEP512(64, Z10, Z2)

sq5reduce:
	VADDPD Z1, Z0, Z0
	VADDPD Z3, Z2, Z2
	VADDPD Z2, Z0, Z0
	HALVE512
	MOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func gradSumsAVX512(x, dy *float32, n int, m float64, sg, sgx *float64)
TEXT ·gradSumsAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Z15
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	MOVQ CX, DX
	SHRQ $4, DX
	JZ   g5tail

g5loop:
	GSTEP512(0, Z8, Z9, Z0, Z2)
	GSTEP512(32, Z10, Z11, Z1, Z3)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ  g5loop

g5tail:
	ANDQ $15, CX
	JZ   g5reduce
	GSTEP512(0, Z8, Z9, Z0, Z2)

g5reduce:
	// Σ g·(x − m): v = Z2 + Z3, halved into X4.
	VADDPD Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPD Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VADDPD X3, X2, X2
	VPERMILPD $1, X2, X3
	VADDSD X3, X2, X4
	// Σ g: v = Z0 + Z1.
	VADDPD Z1, Z0, Z0
	HALVE512
	MOVQ sg+32(FP), AX
	MOVSD X0, (AX)
	MOVQ sgx+40(FP), AX
	MOVSD X4, (AX)
	VZEROUPPER
	RET

// func affineAVX512(x, y *float32, n int, m, s, b float64)
//
// n is any count > 0: the last n mod 8 values are loaded and stored under
// the mask K1 (masked-off lanes neither fault nor change memory).
TEXT ·affineAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Z13
	VBROADCASTSD s+32(FP), Z14
	VBROADCASTSD b+40(FP), Z15
	MOVQ CX, DX
	SHRQ $4, DX
	JZ   aff5tail8

aff5loop:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 32(SI), Z1
	VSUBPD Z13, Z0, Z0
	VSUBPD Z13, Z1, Z1
	VMULPD Z14, Z0, Z0
	VMULPD Z14, Z1, Z1
	VADDPD Z15, Z0, Z0
	VADDPD Z15, Z1, Z1
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z1, Y1
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ  aff5loop

aff5tail8:
	TESTQ $8, CX
	JZ    aff5tail1
	VCVTPS2PD 0(SI), Z0
	VSUBPD Z13, Z0, Z0
	VMULPD Z14, Z0, Z0
	VADDPD Z15, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI

aff5tail1:
	ANDQ $7, CX
	JZ   aff5done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VCVTPS2PD.Z 0(SI), K1, Z0
	VSUBPD Z13, Z0, Z0
	VMULPD Z14, Z0, Z0
	VADDPD Z15, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMOVUPS Z0, K1, 0(DI)

aff5done:
	VZEROUPPER
	RET

// func gradApplyAVX512(x, dy, dx *float32, n int, m, a, am1, k1 float64)
//
// n is any count > 0, the tail masked as in affineAVX512.
TEXT ·gradApplyAVX512(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DI
	MOVQ dx+16(FP), R8
	MOVQ n+24(FP), CX
	VBROADCASTSD m+32(FP), Z12
	VBROADCASTSD a+40(FP), Z13
	VBROADCASTSD am1+48(FP), Z14
	VBROADCASTSD k1+56(FP), Z15
	MOVQ CX, DX
	SHRQ $4, DX
	JZ   gap5tail8

gap5loop:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 32(SI), Z1
	VCVTPS2PD 0(DI), Z2
	VCVTPS2PD 32(DI), Z3
	VSUBPD Z12, Z0, Z0
	VSUBPD Z12, Z1, Z1
	VMULPD Z15, Z0, Z0
	VMULPD Z15, Z1, Z1
	VADDPD Z14, Z0, Z0
	VADDPD Z14, Z1, Z1
	VMULPD Z13, Z2, Z2
	VMULPD Z13, Z3, Z3
	VSUBPD Z0, Z2, Z2
	VSUBPD Z1, Z3, Z3
	VCVTPD2PS Z2, Y2
	VCVTPD2PS Z3, Y3
	VMOVUPS Y2, 0(R8)
	VMOVUPS Y3, 32(R8)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	DECQ DX
	JNZ  gap5loop

gap5tail8:
	TESTQ $8, CX
	JZ    gap5tail1
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 0(DI), Z2
	VSUBPD Z12, Z0, Z0
	VMULPD Z15, Z0, Z0
	VADDPD Z14, Z0, Z0
	VMULPD Z13, Z2, Z2
	VSUBPD Z0, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Y2, 0(R8)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8

gap5tail1:
	ANDQ $7, CX
	JZ   gap5done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VCVTPS2PD.Z 0(SI), K1, Z0
	VCVTPS2PD.Z 0(DI), K1, Z2
	VSUBPD Z12, Z0, Z0
	VMULPD Z15, Z0, Z0
	VADDPD Z14, Z0, Z0
	VMULPD Z13, Z2, Z2
	VSUBPD Z0, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Z2, K1, 0(R8)

gap5done:
	VZEROUPPER
	RET
