//go:build amd64 && !purego

#include "textflag.h"

// Philox state lives in 64-bit lanes (8 instances per Z register, two
// registers per word for 16 instances). VPMULUDQ multiplies the low 32 bits of
// each lane into a full 64-bit product; upper halves may hold garbage, which
// VPMULUDQ ignores and VPMOVQD drops at the end.

// ROUND: one Philox round on (c0,c1,c2,c3,k0,k1) = (A,B,C,D,E,F), scratch P,Q.
#define ROUND(A, B, C, D, E, F, P, Q) \
	VPMULUDQ Z28, A, P \
	VPMULUDQ Z29, C, Q \
	VPSRLQ $32, Q, A \
	VPTERNLOGQ $0x96, E, B, A \
	VMOVDQA64 Q, B \
	VPSRLQ $32, P, C \
	VPTERNLOGQ $0x96, F, D, C \
	VMOVDQA64 P, D \
	VPADDD Z30, E, E \
	VPADDD Z31, F, F

// func philox16AVX512(in *philoxIn, out *philoxOut)
TEXT ·philox16AVX512(SB), NOSPLIT, $0-16
	MOVQ in+0(FP), SI
	MOVQ out+8(FP), DI
	MOVL $0xD2511F53, AX
	VPBROADCASTQ AX, Z28
	MOVL $0xCD9E8D57, AX
	VPBROADCASTQ AX, Z29
	MOVL $0x9E3779B9, AX
	VPBROADCASTD AX, Z30
	MOVL $0xBB67AE85, AX
	VPBROADCASTD AX, Z31
	VPMOVZXDQ 0(SI), Z0
	VPMOVZXDQ 64(SI), Z1
	VPMOVZXDQ 128(SI), Z2
	VPMOVZXDQ 192(SI), Z3
	VPMOVZXDQ 256(SI), Z4
	VPMOVZXDQ 320(SI), Z5
	VPMOVZXDQ 32(SI), Z8
	VPMOVZXDQ 96(SI), Z9
	VPMOVZXDQ 160(SI), Z10
	VPMOVZXDQ 224(SI), Z11
	VPMOVZXDQ 288(SI), Z12
	VPMOVZXDQ 352(SI), Z13
	MOVQ $10, CX

rounds:
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
	ROUND(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15)
	DECQ CX
	JNZ rounds

	VPMOVQD Z0, 0(DI)
	VPMOVQD Z8, 32(DI)
	VPMOVQD Z1, 64(DI)
	VPMOVQD Z9, 96(DI)
	VPMOVQD Z2, 128(DI)
	VPMOVQD Z10, 160(DI)
	VPMOVQD Z3, 192(DI)
	VPMOVQD Z11, 224(DI)
	VZEROUPPER
	RET

// func signAddAVX512(d *[128]int32, masks unsafe.Pointer, twoC *int32, k int, sumC int32)
TEXT ·signAddAVX512(SB), NOSPLIT, $0-36
	MOVQ d+0(FP), DI
	MOVQ masks+8(FP), SI
	MOVQ twoC+16(FP), BX
	MOVQ k+24(FP), CX
	MOVL sumC+32(FP), AX
	VPBROADCASTD AX, Z31
	XORQ R8, R8 // group g

group:
	VMOVDQA32 Z31, Z0
	// R9 = masks + (g/2)·64 + (g%2)·2
	MOVQ R8, R9
	SHRQ $1, R9
	SHLQ $6, R9
	MOVQ R8, R10
	ANDQ $1, R10
	SHLQ $1, R10
	ADDQ R10, R9
	ADDQ SI, R9
	MOVQ BX, R11 // twoC cursor
	MOVQ CX, R12 // updates left

chunk:
	MOVQ $16, R13
	CMPQ R12, R13
	CMOVQLT R12, R13
	MOVQ R9, R14

lane:
	KMOVW (R14), K1
	VPSUBD.BCST (R11), Z0, K1, Z0
	ADDQ $4, R14
	ADDQ $4, R11
	DECQ R13
	JNZ lane
	ADDQ $256, R9
	SUBQ $16, R12
	JG chunk

	VPADDD (DI), Z0, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ $64, DI
	INCQ R8
	CMPQ R8, $8
	JLT group
	VZEROUPPER
	RET

// func perturbBlockAVX512(q *[128]int32, v *[128]float32, masks unsafe.Pointer, eps int32, scale float32)
TEXT ·perturbBlockAVX512(SB), NOSPLIT, $0-32
	MOVQ q+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ masks+16(FP), BX
	MOVL eps+24(FP), AX
	VPBROADCASTD AX, Z28      // +eps
	ADDL AX, AX
	VPBROADCASTD AX, Z29      // 2·eps
	VBROADCASTSS scale+28(FP), Z30
	XORQ R8, R8

pgroup:
	MOVQ R8, R9
	SHRQ $1, R9
	SHLQ $6, R9
	MOVQ R8, R10
	ANDQ $1, R10
	SHLQ $1, R10
	ADDQ R10, R9
	KMOVW (BX)(R9*1), K1
	VPADDD (SI), Z28, Z0
	VPSUBD Z29, Z0, K1, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS Z30, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	INCQ R8
	CMPQ R8, $8
	JLT pgroup
	VZEROUPPER
	RET
