//go:build amd64 && !purego

#include "textflag.h"

// Elementwise float32 kernels, eight lanes at a time with AVX2. Every
// kernel takes n (a multiple of 8) and nt: when nt is true, dst must be
// 32-byte aligned and the results are written with non-temporal stores
// (VMOVNTPS, then SFENCE), which skip the read of each destination line
// that a normal store costs; otherwise plain unaligned stores. The loops
// run 32 elements at a time, then 8. No FMA: every result is rounded as
// the portable Go loop rounds it. Where two NaNs meet, x86 returns the
// first source operand's (quieted); each kernel keeps the operand order
// the Go compiler emits for device/cpu's portable loop (a + b, a - b,
// a * b, x * s, (x * s) + y, v * alpha), which device/cpu's tests check
// (device/cpu keeps a NaN s or alpha on its portable loop).

// func addAVX2(dst, a, b *float32, n int, nt bool)
// dst = a + b
TEXT ·addAVX2(SB), NOSPLIT, $0-33
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVBQZX nt+32(FP), BX
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (SI)(AX*4), Y0
	VADDPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VADDPS 32(DX)(AX*4), Y1, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VADDPS 64(DX)(AX*4), Y2, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VADDPS 96(DX)(AX*4), Y3, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (SI)(AX*4), Y0
	VADDPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (SI)(AX*4), Y0
	VADDPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VADDPS 32(DX)(AX*4), Y1, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VADDPS 64(DX)(AX*4), Y2, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VADDPS 96(DX)(AX*4), Y3, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (SI)(AX*4), Y0
	VADDPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func subAVX2(dst, a, b *float32, n int, nt bool)
// dst = a - b
TEXT ·subAVX2(SB), NOSPLIT, $0-33
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVBQZX nt+32(FP), BX
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VSUBPS 32(DX)(AX*4), Y1, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VSUBPS 64(DX)(AX*4), Y2, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VSUBPS 96(DX)(AX*4), Y3, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VSUBPS 32(DX)(AX*4), Y1, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VSUBPS 64(DX)(AX*4), Y2, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VSUBPS 96(DX)(AX*4), Y3, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func mulAVX2(dst, a, b *float32, n int, nt bool)
// dst = a * b
TEXT ·mulAVX2(SB), NOSPLIT, $0-33
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	MOVBQZX nt+32(FP), BX
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VMULPS 32(DX)(AX*4), Y1, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VMULPS 64(DX)(AX*4), Y2, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VMULPS 96(DX)(AX*4), Y3, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VMULPS 32(DX)(AX*4), Y1, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VMULPS 64(DX)(AX*4), Y2, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VMULPS 96(DX)(AX*4), Y3, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS (DX)(AX*4), Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func scaleAVX2(dst, x *float32, n int, s float32, nt bool)
// dst = x * s (x the first operand, as the Go loop computes s*x)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-29
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS s+24(FP), Y15
	MOVBQZX nt+28(FP), BX
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VMULPS Y15, Y1, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VMULPS Y15, Y2, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VMULPS Y15, Y3, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS Y15, Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y1
	VMULPS Y15, Y1, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y2
	VMULPS Y15, Y2, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y3
	VMULPS Y15, Y3, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (SI)(AX*4), Y0
	VMULPS Y15, Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func axpyAVX2(y, x *float32, n int, s float32, nt bool)
// y = (x*s) + y: a multiply and an add, each rounded (no FMA); the
// product is the first operand of the add, as in the Go loop
TEXT ·axpyAVX2(SB), NOSPLIT, $0-29
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS s+24(FP), Y15
	MOVBQZX nt+28(FP), BX
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (SI)(AX*4), Y4
	VMULPS Y15, Y4, Y4
	VADDPS (DI)(AX*4), Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y5
	VMULPS Y15, Y5, Y5
	VADDPS 32(DI)(AX*4), Y5, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y6
	VMULPS Y15, Y6, Y6
	VADDPS 64(DI)(AX*4), Y6, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y7
	VMULPS Y15, Y7, Y7
	VADDPS 96(DI)(AX*4), Y7, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (SI)(AX*4), Y4
	VMULPS Y15, Y4, Y4
	VADDPS (DI)(AX*4), Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (SI)(AX*4), Y4
	VMULPS Y15, Y4, Y4
	VADDPS (DI)(AX*4), Y4, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(SI)(AX*4), Y5
	VMULPS Y15, Y5, Y5
	VADDPS 32(DI)(AX*4), Y5, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(SI)(AX*4), Y6
	VMULPS Y15, Y6, Y6
	VADDPS 64(DI)(AX*4), Y6, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(SI)(AX*4), Y7
	VMULPS Y15, Y7, Y7
	VADDPS 96(DI)(AX*4), Y7, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (SI)(AX*4), Y4
	VMULPS Y15, Y4, Y4
	VADDPS (DI)(AX*4), Y4, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func maskPosAVX2(dst, x, v *float32, n int, nt bool)
// dst = v where x > 0, else +0, on the bit patterns: x > 0 is a signed
// int32 compare of x's bits with 0 (sign bit clear and not +0; a
// positive NaN counts). ReLU is maskPos(y, x, x); its gradient
// maskPos(dx, x, dy).
TEXT ·maskPosAVX2(SB), NOSPLIT, $0-33
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ n+24(FP), CX
	MOVBQZX nt+32(FP), BX
	VPXOR Y14, Y14, Y14
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND (DX)(AX*4), Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVDQU 32(SI)(AX*4), Y5
	VPCMPGTD Y14, Y5, Y5
	VPAND 32(DX)(AX*4), Y5, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVDQU 64(SI)(AX*4), Y6
	VPCMPGTD Y14, Y6, Y6
	VPAND 64(DX)(AX*4), Y6, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVDQU 96(SI)(AX*4), Y7
	VPCMPGTD Y14, Y7, Y7
	VPAND 96(DX)(AX*4), Y7, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND (DX)(AX*4), Y4, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND (DX)(AX*4), Y4, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVDQU 32(SI)(AX*4), Y5
	VPCMPGTD Y14, Y5, Y5
	VPAND 32(DX)(AX*4), Y5, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVDQU 64(SI)(AX*4), Y6
	VPCMPGTD Y14, Y6, Y6
	VPAND 64(DX)(AX*4), Y6, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVDQU 96(SI)(AX*4), Y7
	VPCMPGTD Y14, Y7, Y7
	VPAND 96(DX)(AX*4), Y7, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND (DX)(AX*4), Y4, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET

// func leakyAVX2(dst, x, v *float32, n int, alpha float32, nt bool)
// dst = v where x > 0 (as maskPos), else v*alpha (v the first operand).
// Leaky ReLU is leaky(y, x, x); its gradient leaky(dx, x, dy).
TEXT ·leakyAVX2(SB), NOSPLIT, $0-37
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS alpha+32(FP), Y15
	MOVBQZX nt+36(FP), BX
	VPXOR Y14, Y14, Y14
	MOVQ CX, R10
	ANDQ $-32, R10
	XORQ AX, AX
	TESTQ BX, BX
	JNZ nt
	CMPQ AX, R10
	JAE tail
loop32:
	VMOVUPS (DX)(AX*4), Y0
	VMULPS Y15, Y0, Y8
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND Y0, Y4, Y0
	VPANDN Y8, Y4, Y8
	VPOR Y8, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS 32(DX)(AX*4), Y1
	VMULPS Y15, Y1, Y9
	VMOVDQU 32(SI)(AX*4), Y5
	VPCMPGTD Y14, Y5, Y5
	VPAND Y1, Y5, Y1
	VPANDN Y9, Y5, Y9
	VPOR Y9, Y1, Y1
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(DX)(AX*4), Y2
	VMULPS Y15, Y2, Y10
	VMOVDQU 64(SI)(AX*4), Y6
	VPCMPGTD Y14, Y6, Y6
	VPAND Y2, Y6, Y2
	VPANDN Y10, Y6, Y10
	VPOR Y10, Y2, Y2
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(DX)(AX*4), Y3
	VMULPS Y15, Y3, Y11
	VMOVDQU 96(SI)(AX*4), Y7
	VPCMPGTD Y14, Y7, Y7
	VPAND Y3, Y7, Y3
	VPANDN Y11, Y7, Y11
	VPOR Y11, Y3, Y3
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB loop32
tail:
	CMPQ AX, CX
	JAE done
loop8:
	VMOVUPS (DX)(AX*4), Y0
	VMULPS Y15, Y0, Y8
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND Y0, Y4, Y0
	VPANDN Y8, Y4, Y8
	VPOR Y8, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB loop8
done:
	VZEROUPPER
	RET

nt:
	CMPQ AX, R10
	JAE nttail
ntloop32:
	VMOVUPS (DX)(AX*4), Y0
	VMULPS Y15, Y0, Y8
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND Y0, Y4, Y0
	VPANDN Y8, Y4, Y8
	VPOR Y8, Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	VMOVUPS 32(DX)(AX*4), Y1
	VMULPS Y15, Y1, Y9
	VMOVDQU 32(SI)(AX*4), Y5
	VPCMPGTD Y14, Y5, Y5
	VPAND Y1, Y5, Y1
	VPANDN Y9, Y5, Y9
	VPOR Y9, Y1, Y1
	VMOVNTPS Y1, 32(DI)(AX*4)
	VMOVUPS 64(DX)(AX*4), Y2
	VMULPS Y15, Y2, Y10
	VMOVDQU 64(SI)(AX*4), Y6
	VPCMPGTD Y14, Y6, Y6
	VPAND Y2, Y6, Y2
	VPANDN Y10, Y6, Y10
	VPOR Y10, Y2, Y2
	VMOVNTPS Y2, 64(DI)(AX*4)
	VMOVUPS 96(DX)(AX*4), Y3
	VMULPS Y15, Y3, Y11
	VMOVDQU 96(SI)(AX*4), Y7
	VPCMPGTD Y14, Y7, Y7
	VPAND Y3, Y7, Y3
	VPANDN Y11, Y7, Y11
	VPOR Y11, Y3, Y3
	VMOVNTPS Y3, 96(DI)(AX*4)
	ADDQ $32, AX
	CMPQ AX, R10
	JB ntloop32
nttail:
	CMPQ AX, CX
	JAE ntdone
ntloop8:
	VMOVUPS (DX)(AX*4), Y0
	VMULPS Y15, Y0, Y8
	VMOVDQU (SI)(AX*4), Y4
	VPCMPGTD Y14, Y4, Y4
	VPAND Y0, Y4, Y0
	VPANDN Y8, Y4, Y8
	VPOR Y8, Y0, Y0
	VMOVNTPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	CMPQ AX, CX
	JB ntloop8
ntdone:
	SFENCE
	VZEROUPPER
	RET
