//go:build amd64 && !purego

#include "textflag.h"

// maxPool2x2AVX512: 16 windows a step. The two input rows' 32 floats are
// loaded (the last step masked to the outputs left) and split into the
// even and odd taps (VPERMT2PS): a, b from x0, c, d from x1. A step with
// a NaN in any lane ends the kernel. Else s1 = b > a, s2 = d > c (ordered
// compares: −0 and +0 equal, ties to the earlier tap), m01 and m23 the
// winners of the pairs, s3 = m23 > m01; y is the winner and
// q = q0 + 2c + (s3 ? w + s2 : s1).

DATA evenIdx<>+0(SB)/4, $0
DATA evenIdx<>+4(SB)/4, $2
DATA evenIdx<>+8(SB)/4, $4
DATA evenIdx<>+12(SB)/4, $6
DATA evenIdx<>+16(SB)/4, $8
DATA evenIdx<>+20(SB)/4, $10
DATA evenIdx<>+24(SB)/4, $12
DATA evenIdx<>+28(SB)/4, $14
DATA evenIdx<>+32(SB)/4, $16
DATA evenIdx<>+36(SB)/4, $18
DATA evenIdx<>+40(SB)/4, $20
DATA evenIdx<>+44(SB)/4, $22
DATA evenIdx<>+48(SB)/4, $24
DATA evenIdx<>+52(SB)/4, $26
DATA evenIdx<>+56(SB)/4, $28
DATA evenIdx<>+60(SB)/4, $30
GLOBL evenIdx<>(SB), RODATA|NOPTR, $64

// func maxPool2x2AVX512(x0, x1, y *float32, idx *int32, n int, q0, w int32) int
TEXT ·maxPool2x2AVX512(SB), NOSPLIT, $0-56
	MOVQ x0+0(FP), SI
	MOVQ x1+8(FP), DI
	MOVQ y+16(FP), R8
	MOVQ idx+24(FP), R9
	MOVQ n+32(FP), R12
	MOVL q0+40(FP), AX
	MOVL w+44(FP), BX
	VMOVDQU32 evenIdx<>(SB), Z20 // even lanes; +1: odd
	MOVL $1, DX
	VPBROADCASTD DX, Z24         // ones
	VPADDD Z24, Z20, Z21         // odd lanes
	VPBROADCASTD AX, Z22
	VPADDD Z20, Z22, Z22         // Q = q0 + 2·lane
	VPBROADCASTD BX, Z23         // w
	MOVL $32, DX
	VPBROADCASTD DX, Z25         // 32: Q's step
	XORQ R10, R10                // outputs done

loop:
	MOVQ R12, R11
	SUBQ R10, R11                // outputs left
	JLE  done
	CMPQ R11, $16
	JLE  masks
	MOVQ $16, R11

masks:
	// K1: the R11 outputs; K2, K3: the first 16 and next 16 of the 2·R11 inputs.
	MOVQ R11, CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K1
	SHLQ $1, CX
	MOVQ CX, R13
	CMPQ CX, $16
	JLE  lo
	MOVQ $16, CX

lo:
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K2
	SUBQ CX, R13
	MOVQ R13, CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K3

	VMOVUPS.Z 0(SI), K2, Z0
	VMOVUPS.Z 64(SI), K3, Z1
	VMOVUPS.Z 0(DI), K2, Z2
	VMOVUPS.Z 64(DI), K3, Z3
	VMOVAPS Z0, Z4
	VPERMT2PS Z1, Z20, Z4        // a
	VMOVAPS Z0, Z5
	VPERMT2PS Z1, Z21, Z5        // b
	VMOVAPS Z2, Z6
	VPERMT2PS Z3, Z20, Z6        // c
	VMOVAPS Z2, Z7
	VPERMT2PS Z3, Z21, Z7        // d
	VCMPPS $3, Z5, Z4, K4        // unordered: a or b NaN
	VCMPPS $3, Z7, Z6, K5
	KORTESTW K4, K5
	JNZ  done

	VCMPPS $0x1e, Z4, Z5, K6     // s1 = b > a
	VCMPPS $0x1e, Z6, Z7, K7     // s2 = d > c
	VBLENDMPS Z5, Z4, K6, Z8     // m01
	VBLENDMPS Z7, Z6, K7, Z9     // m23
	VCMPPS $0x1e, Z8, Z9, K4     // s3 = m23 > m01
	VBLENDMPS Z9, Z8, K4, Z10    // y
	VMOVDQA32 Z22, Z11
	VPADDD Z24, Z22, K6, Z11     // Q + s1
	VPADDD Z23, Z22, Z12
	VPADDD Z24, Z12, K7, Z12     // Q + w + s2
	VPBLENDMD Z12, Z11, K4, Z13
	VMOVUPS Z10, K1, 0(R8)
	VMOVDQU32 Z13, K1, 0(R9)

	VPADDD Z25, Z22, Z22
	ADDQ $128, SI
	ADDQ $128, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ R11, R10
	JMP  loop

done:
	MOVQ R10, ret+48(FP)
	VZEROUPPER
	RET

// maxPoolGrad2x2AVX512: 16 windows a step (the last masked to the
// outputs left). Tap t of window c gets dy[c] where idx[c] is its
// position (Q + 0, 1, w, w + 1, Q = q0 + 2c; compared in int32, which
// cannot overflow for a plane MaxPool2DGrad accepts), else +0, then
// + (+0) as the general loop's cleared-then-added value (−0 becomes +0);
// taps (0,0), (0,1) interleave into row d0, (1,0), (1,1) into d1.

DATA ilvLo<>+0(SB)/4, $0
DATA ilvLo<>+4(SB)/4, $16
DATA ilvLo<>+8(SB)/4, $1
DATA ilvLo<>+12(SB)/4, $17
DATA ilvLo<>+16(SB)/4, $2
DATA ilvLo<>+20(SB)/4, $18
DATA ilvLo<>+24(SB)/4, $3
DATA ilvLo<>+28(SB)/4, $19
DATA ilvLo<>+32(SB)/4, $4
DATA ilvLo<>+36(SB)/4, $20
DATA ilvLo<>+40(SB)/4, $5
DATA ilvLo<>+44(SB)/4, $21
DATA ilvLo<>+48(SB)/4, $6
DATA ilvLo<>+52(SB)/4, $22
DATA ilvLo<>+56(SB)/4, $7
DATA ilvLo<>+60(SB)/4, $23
GLOBL ilvLo<>(SB), RODATA|NOPTR, $64

DATA ilvHi<>+0(SB)/4, $8
DATA ilvHi<>+4(SB)/4, $24
DATA ilvHi<>+8(SB)/4, $9
DATA ilvHi<>+12(SB)/4, $25
DATA ilvHi<>+16(SB)/4, $10
DATA ilvHi<>+20(SB)/4, $26
DATA ilvHi<>+24(SB)/4, $11
DATA ilvHi<>+28(SB)/4, $27
DATA ilvHi<>+32(SB)/4, $12
DATA ilvHi<>+36(SB)/4, $28
DATA ilvHi<>+40(SB)/4, $13
DATA ilvHi<>+44(SB)/4, $29
DATA ilvHi<>+48(SB)/4, $14
DATA ilvHi<>+52(SB)/4, $30
DATA ilvHi<>+56(SB)/4, $15
DATA ilvHi<>+60(SB)/4, $31
GLOBL ilvHi<>(SB), RODATA|NOPTR, $64

// func maxPoolGrad2x2AVX512(dy *float32, idx *int32, d0, d1 *float32, n int, q0, w int32)
TEXT ·maxPoolGrad2x2AVX512(SB), NOSPLIT, $0-48
	MOVQ dy+0(FP), SI
	MOVQ idx+8(FP), DI
	MOVQ d0+16(FP), R8
	MOVQ d1+24(FP), R9
	MOVQ n+32(FP), R12
	MOVL q0+40(FP), AX
	MOVL w+44(FP), BX
	VMOVDQU32 ilvLo<>(SB), Z26
	VMOVDQU32 ilvHi<>(SB), Z27
	VMOVDQU32 evenIdx<>(SB), Z20
	MOVL $1, DX
	VPBROADCASTD DX, Z24         // ones
	VPBROADCASTD AX, Z22
	VPADDD Z20, Z22, Z22         // Q = q0 + 2·lane
	VPBROADCASTD BX, Z23         // w
	MOVL $32, DX
	VPBROADCASTD DX, Z25
	VPXORD Z31, Z31, Z31         // +0
	XORQ R10, R10

gloop:
	MOVQ R12, R11
	SUBQ R10, R11
	JLE  gdone
	CMPQ R11, $16
	JLE  gmasks
	MOVQ $16, R11

gmasks:
	MOVQ R11, CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K1
	SHLQ $1, CX
	MOVQ CX, R13
	CMPQ CX, $16
	JLE  glo
	MOVQ $16, CX

glo:
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K2
	SUBQ CX, R13
	MOVQ R13, CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	KMOVW DX, K3

	VMOVUPS.Z 0(SI), K1, Z0      // dy
	VMOVDQU32.Z 0(DI), K1, Z1    // idx
	VPCMPEQD Z22, Z1, K4         // idx = Q
	VPADDD Z24, Z22, Z2
	VPCMPEQD Z2, Z1, K5          // idx = Q + 1
	VPADDD Z23, Z22, Z3
	VPCMPEQD Z3, Z1, K6          // idx = Q + w
	VPADDD Z24, Z3, Z2
	VPCMPEQD Z2, Z1, K7          // idx = Q + w + 1
	VMOVAPS.Z Z0, K4, Z4
	VMOVAPS.Z Z0, K5, Z5
	VMOVAPS.Z Z0, K6, Z6
	VMOVAPS.Z Z0, K7, Z7
	VADDPS Z31, Z4, Z4
	VADDPS Z31, Z5, Z5
	VADDPS Z31, Z6, Z6
	VADDPS Z31, Z7, Z7
	VMOVAPS Z4, Z8
	VPERMT2PS Z5, Z26, Z8
	VMOVAPS Z4, Z9
	VPERMT2PS Z5, Z27, Z9
	VMOVAPS Z6, Z10
	VPERMT2PS Z7, Z26, Z10
	VMOVAPS Z6, Z11
	VPERMT2PS Z7, Z27, Z11
	VMOVUPS Z8, K2, 0(R8)
	VMOVUPS Z9, K3, 64(R8)
	VMOVUPS Z10, K2, 0(R9)
	VMOVUPS Z11, K3, 64(R9)

	VPADDD Z25, Z22, Z22
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $128, R8
	ADDQ $128, R9
	ADDQ R11, R10
	JMP  gloop

gdone:
	VZEROUPPER
	RET
