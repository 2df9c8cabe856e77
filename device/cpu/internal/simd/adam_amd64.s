//go:build amd64 && !purego

#include "textflag.h"

// func Adam(pp, gp, mp, vp *float32, n int, c *[8]float32, wd bool)
//
// One Adam/AdamW update of n elements (n a multiple of 8), eight at a time
// with AVX2 and FMA. c holds, broadcast to every lane:
//   c[0] decay: 1 - lr*wd for AdamW, else 1
//   c[1] wd: the L2 term of Adam
//   c[2] beta1, c[3] 1 - beta1, c[4] beta2, c[5] 1 - beta2
//   c[6] step = lr/(1 - beta1^t)*sqrt(1 - beta2^t)
//   c[7] eps*sqrt(1 - beta2^t)
// wd says whether to add c[1]*p to the gradient.
TEXT ·Adam(SB), NOSPLIT, $0-49
	MOVQ pp+0(FP), DI
	MOVQ gp+8(FP), SI
	MOVQ mp+16(FP), R8
	MOVQ vp+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), DX
	MOVBQZX wd+48(FP), BX
	VBROADCASTSS 0(DX), Y8
	VBROADCASTSS 4(DX), Y9
	VBROADCASTSS 8(DX), Y10
	VBROADCASTSS 12(DX), Y11
	VBROADCASTSS 16(DX), Y12
	VBROADCASTSS 20(DX), Y13
	VBROADCASTSS 24(DX), Y14
	VBROADCASTSS 28(DX), Y15
	XORQ AX, AX
	CMPQ CX, $0
	JLE done

loop:
	VMOVUPS (DI)(AX*4), Y0   // p
	VMOVUPS (SI)(AX*4), Y1   // g
	VMULPS Y8, Y0, Y0        // p = p*decay
	TESTQ BX, BX
	JZ nowd
	VFMADD231PS Y9, Y0, Y1   // g = p*wd + g

nowd:
	VMOVUPS (R8)(AX*4), Y2   // m
	VMULPS Y10, Y2, Y2       // m = m*beta1
	VFMADD231PS Y11, Y1, Y2  // m = g*(1-beta1) + m
	VMOVUPS Y2, (R8)(AX*4)
	VMOVUPS (R9)(AX*4), Y3   // v
	VMULPS Y12, Y3, Y3       // v = v*beta2
	VMULPS Y13, Y1, Y4       // t = g*(1-beta2)
	VFMADD231PS Y1, Y4, Y3   // v = t*g + v
	VMOVUPS Y3, (R9)(AX*4)
	VSQRTPS Y3, Y5
	VADDPS Y15, Y5, Y5       // den = sqrt(v) + eps'
	VDIVPS Y5, Y2, Y6        // r = m / den
	VFNMADD231PS Y14, Y6, Y0 // p = p - r*step
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop

done:
	VZEROUPPER
	RET
