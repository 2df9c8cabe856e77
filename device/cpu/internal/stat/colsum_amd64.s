//go:build amd64 && !purego

#include "textflag.h"

// ColAdd4's AVX2 kernel: four columns a step (eight while at least eight
// are left, two independent registers), each widened row added in row
// order, without FMA: the float64 operations of colAdd4Generic. n is a
// multiple of 4 and > 0; loads and stores are unaligned.

// func colAdd4AVX2(acc *float64, r0, r1, r2, r3 *float32, n int)
TEXT ·colAdd4AVX2(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DI
	MOVQ r0+8(FP), R8
	MOVQ r1+16(FP), R9
	MOVQ r2+24(FP), R10
	MOVQ r3+32(FP), R11
	MOVQ n+40(FP), CX
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-8, DX
	JZ   ca4

ca8loop:
	VMOVUPD 0(DI)(AX*8), Y0
	VMOVUPD 32(DI)(AX*8), Y1
	VCVTPS2PD 0(R8)(AX*4), Y2
	VCVTPS2PD 16(R8)(AX*4), Y3
	VADDPD Y2, Y0, Y0
	VADDPD Y3, Y1, Y1
	VCVTPS2PD 0(R9)(AX*4), Y2
	VCVTPS2PD 16(R9)(AX*4), Y3
	VADDPD Y2, Y0, Y0
	VADDPD Y3, Y1, Y1
	VCVTPS2PD 0(R10)(AX*4), Y2
	VCVTPS2PD 16(R10)(AX*4), Y3
	VADDPD Y2, Y0, Y0
	VADDPD Y3, Y1, Y1
	VCVTPS2PD 0(R11)(AX*4), Y2
	VCVTPS2PD 16(R11)(AX*4), Y3
	VADDPD Y2, Y0, Y0
	VADDPD Y3, Y1, Y1
	VMOVUPD Y0, 0(DI)(AX*8)
	VMOVUPD Y1, 32(DI)(AX*8)
	ADDQ $8, AX
	CMPQ AX, DX
	JLT  ca8loop

ca4:
	CMPQ AX, CX
	JGE  cadone
	VMOVUPD 0(DI)(AX*8), Y0
	VCVTPS2PD 0(R8)(AX*4), Y2
	VADDPD Y2, Y0, Y0
	VCVTPS2PD 0(R9)(AX*4), Y2
	VADDPD Y2, Y0, Y0
	VCVTPS2PD 0(R10)(AX*4), Y2
	VADDPD Y2, Y0, Y0
	VCVTPS2PD 0(R11)(AX*4), Y2
	VADDPD Y2, Y0, Y0
	VMOVUPD Y0, 0(DI)(AX*8)

cadone:
	VZEROUPPER
	RET
