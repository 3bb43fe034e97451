//go:build amd64 && !purego

#include "textflag.h"

// Vectorised e^x for the forward pass's kernels (softmax, the loss's
// log-sum-exp, GELU, SiLU): Cephes' expf on 8 float32 lanes (AVX2 + FMA):
// n = round(x·log2 e), r = x − n·ln 2 (in two parts), e^r by a degree-7
// polynomial, times 2^n by adding n to the exponent bits. Inputs are clamped
// to [−86, 88] (results of x < −86 are e^−86 ≈ 4e−38 instead of smaller or 0);
// NaN propagates. Relative error ≤ 2 ulp (TestExpKernels).

// 0: lo = -86.0
DATA ·expTab+0(SB)/4, $0xc2ac0000
DATA ·expTab+4(SB)/4, $0xc2ac0000
DATA ·expTab+8(SB)/4, $0xc2ac0000
DATA ·expTab+12(SB)/4, $0xc2ac0000
DATA ·expTab+16(SB)/4, $0xc2ac0000
DATA ·expTab+20(SB)/4, $0xc2ac0000
DATA ·expTab+24(SB)/4, $0xc2ac0000
DATA ·expTab+28(SB)/4, $0xc2ac0000
// 32: hi = 88.0
DATA ·expTab+32(SB)/4, $0x42b00000
DATA ·expTab+36(SB)/4, $0x42b00000
DATA ·expTab+40(SB)/4, $0x42b00000
DATA ·expTab+44(SB)/4, $0x42b00000
DATA ·expTab+48(SB)/4, $0x42b00000
DATA ·expTab+52(SB)/4, $0x42b00000
DATA ·expTab+56(SB)/4, $0x42b00000
DATA ·expTab+60(SB)/4, $0x42b00000
// 64: log2e = 1.4426950408889634
DATA ·expTab+64(SB)/4, $0x3fb8aa3b
DATA ·expTab+68(SB)/4, $0x3fb8aa3b
DATA ·expTab+72(SB)/4, $0x3fb8aa3b
DATA ·expTab+76(SB)/4, $0x3fb8aa3b
DATA ·expTab+80(SB)/4, $0x3fb8aa3b
DATA ·expTab+84(SB)/4, $0x3fb8aa3b
DATA ·expTab+88(SB)/4, $0x3fb8aa3b
DATA ·expTab+92(SB)/4, $0x3fb8aa3b
// 96: c1 = 0.693359375
DATA ·expTab+96(SB)/4, $0x3f318000
DATA ·expTab+100(SB)/4, $0x3f318000
DATA ·expTab+104(SB)/4, $0x3f318000
DATA ·expTab+108(SB)/4, $0x3f318000
DATA ·expTab+112(SB)/4, $0x3f318000
DATA ·expTab+116(SB)/4, $0x3f318000
DATA ·expTab+120(SB)/4, $0x3f318000
DATA ·expTab+124(SB)/4, $0x3f318000
// 128: c2 = -0.00021219444
DATA ·expTab+128(SB)/4, $0xb95e8083
DATA ·expTab+132(SB)/4, $0xb95e8083
DATA ·expTab+136(SB)/4, $0xb95e8083
DATA ·expTab+140(SB)/4, $0xb95e8083
DATA ·expTab+144(SB)/4, $0xb95e8083
DATA ·expTab+148(SB)/4, $0xb95e8083
DATA ·expTab+152(SB)/4, $0xb95e8083
DATA ·expTab+156(SB)/4, $0xb95e8083
// 160: p0 = 0.000198756915
DATA ·expTab+160(SB)/4, $0x39506967
DATA ·expTab+164(SB)/4, $0x39506967
DATA ·expTab+168(SB)/4, $0x39506967
DATA ·expTab+172(SB)/4, $0x39506967
DATA ·expTab+176(SB)/4, $0x39506967
DATA ·expTab+180(SB)/4, $0x39506967
DATA ·expTab+184(SB)/4, $0x39506967
DATA ·expTab+188(SB)/4, $0x39506967
// 192: p1 = 0.0013981999507
DATA ·expTab+192(SB)/4, $0x3ab743ce
DATA ·expTab+196(SB)/4, $0x3ab743ce
DATA ·expTab+200(SB)/4, $0x3ab743ce
DATA ·expTab+204(SB)/4, $0x3ab743ce
DATA ·expTab+208(SB)/4, $0x3ab743ce
DATA ·expTab+212(SB)/4, $0x3ab743ce
DATA ·expTab+216(SB)/4, $0x3ab743ce
DATA ·expTab+220(SB)/4, $0x3ab743ce
// 224: p2 = 0.0083334519073
DATA ·expTab+224(SB)/4, $0x3c088908
DATA ·expTab+228(SB)/4, $0x3c088908
DATA ·expTab+232(SB)/4, $0x3c088908
DATA ·expTab+236(SB)/4, $0x3c088908
DATA ·expTab+240(SB)/4, $0x3c088908
DATA ·expTab+244(SB)/4, $0x3c088908
DATA ·expTab+248(SB)/4, $0x3c088908
DATA ·expTab+252(SB)/4, $0x3c088908
// 256: p3 = 0.041665795894
DATA ·expTab+256(SB)/4, $0x3d2aa9c1
DATA ·expTab+260(SB)/4, $0x3d2aa9c1
DATA ·expTab+264(SB)/4, $0x3d2aa9c1
DATA ·expTab+268(SB)/4, $0x3d2aa9c1
DATA ·expTab+272(SB)/4, $0x3d2aa9c1
DATA ·expTab+276(SB)/4, $0x3d2aa9c1
DATA ·expTab+280(SB)/4, $0x3d2aa9c1
DATA ·expTab+284(SB)/4, $0x3d2aa9c1
// 288: p4 = 0.16666665459
DATA ·expTab+288(SB)/4, $0x3e2aaaaa
DATA ·expTab+292(SB)/4, $0x3e2aaaaa
DATA ·expTab+296(SB)/4, $0x3e2aaaaa
DATA ·expTab+300(SB)/4, $0x3e2aaaaa
DATA ·expTab+304(SB)/4, $0x3e2aaaaa
DATA ·expTab+308(SB)/4, $0x3e2aaaaa
DATA ·expTab+312(SB)/4, $0x3e2aaaaa
DATA ·expTab+316(SB)/4, $0x3e2aaaaa
// 320: p5 = 0.50000001201
DATA ·expTab+320(SB)/4, $0x3f000000
DATA ·expTab+324(SB)/4, $0x3f000000
DATA ·expTab+328(SB)/4, $0x3f000000
DATA ·expTab+332(SB)/4, $0x3f000000
DATA ·expTab+336(SB)/4, $0x3f000000
DATA ·expTab+340(SB)/4, $0x3f000000
DATA ·expTab+344(SB)/4, $0x3f000000
DATA ·expTab+348(SB)/4, $0x3f000000
// 352: one = 1.0
DATA ·expTab+352(SB)/4, $0x3f800000
DATA ·expTab+356(SB)/4, $0x3f800000
DATA ·expTab+360(SB)/4, $0x3f800000
DATA ·expTab+364(SB)/4, $0x3f800000
DATA ·expTab+368(SB)/4, $0x3f800000
DATA ·expTab+372(SB)/4, $0x3f800000
DATA ·expTab+376(SB)/4, $0x3f800000
DATA ·expTab+380(SB)/4, $0x3f800000
// 384: neginf = -inf
DATA ·expTab+384(SB)/4, $0xff800000
DATA ·expTab+388(SB)/4, $0xff800000
DATA ·expTab+392(SB)/4, $0xff800000
DATA ·expTab+396(SB)/4, $0xff800000
DATA ·expTab+400(SB)/4, $0xff800000
DATA ·expTab+404(SB)/4, $0xff800000
DATA ·expTab+408(SB)/4, $0xff800000
DATA ·expTab+412(SB)/4, $0xff800000
GLOBL ·expTab(SB), RODATA|NOPTR, $416

// func expAffineAVX2(dst, src *float32, n int, a, b float32)
// dst[i] = e^(a·src[i] + b) for i < n, n a multiple of 8.
TEXT ·expAffineAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y15
	VBROADCASTSS b+28(FP), Y8
	VMOVUPS ·expTab+0(SB), Y14
	VMOVUPS ·expTab+32(SB), Y13
	VMOVUPS ·expTab+64(SB), Y12
	VMOVUPS ·expTab+96(SB), Y11
	VMOVUPS ·expTab+128(SB), Y10
	VMOVUPS ·expTab+352(SB), Y9
	SHRQ $3, CX
	JZ   affdone

affloop:
	VMOVUPS (SI), Y0
	VFMADD213PS Y8, Y15, Y0 // Y0 = a·x + b
	VMAXPS Y0, Y14, Y0      // max(lo, x): NaN in x is kept
	VMINPS Y0, Y13, Y0
	VMULPS Y12, Y0, Y1
	VROUNDPS $0, Y1, Y1     // n
	VFNMADD231PS Y11, Y1, Y0 // r = x − n·C1
	VFNMADD231PS Y10, Y1, Y0 // r −= n·C2
	VCVTPS2DQ Y1, Y1
	VPSLLD $23, Y1, Y1
	VMOVUPS ·expTab+160(SB), Y2
	VFMADD213PS ·expTab+192(SB), Y0, Y2
	VFMADD213PS ·expTab+224(SB), Y0, Y2
	VFMADD213PS ·expTab+256(SB), Y0, Y2
	VFMADD213PS ·expTab+288(SB), Y0, Y2
	VFMADD213PS ·expTab+320(SB), Y0, Y2
	VMULPS Y0, Y0, Y3
	VFMADD213PS Y0, Y3, Y2  // p·r² + r
	VADDPS Y9, Y2, Y2       // + 1
	VPADDD Y1, Y2, Y2       // · 2^n
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  affloop

affdone:
	VZEROUPPER
	RET

// func expSumAVX2(src *float32, n int, b float32) float64
// Σ e^(src[i] + b) for i < n, n a multiple of 8, summed in float64 lanes.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS b+16(FP), Y15
	VMOVUPS ·expTab+0(SB), Y14
	VMOVUPS ·expTab+32(SB), Y13
	VMOVUPS ·expTab+64(SB), Y12
	VMOVUPS ·expTab+96(SB), Y11
	VMOVUPS ·expTab+128(SB), Y10
	VMOVUPS ·expTab+352(SB), Y9
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	SHRQ $3, CX
	JZ   sumdone

sumloop:
	VMOVUPS (SI), Y0
	VADDPS Y15, Y0, Y0
	VMAXPS Y0, Y14, Y0
	VMINPS Y0, Y13, Y0
	VMULPS Y12, Y0, Y1
	VROUNDPS $0, Y1, Y1
	VFNMADD231PS Y11, Y1, Y0
	VFNMADD231PS Y10, Y1, Y0
	VCVTPS2DQ Y1, Y1
	VPSLLD $23, Y1, Y1
	VMOVUPS ·expTab+160(SB), Y2
	VFMADD213PS ·expTab+192(SB), Y0, Y2
	VFMADD213PS ·expTab+224(SB), Y0, Y2
	VFMADD213PS ·expTab+256(SB), Y0, Y2
	VFMADD213PS ·expTab+288(SB), Y0, Y2
	VFMADD213PS ·expTab+320(SB), Y0, Y2
	VMULPS Y0, Y0, Y3
	VFMADD213PS Y0, Y3, Y2
	VADDPS Y9, Y2, Y2
	VPADDD Y1, Y2, Y2
	VCVTPS2PD X2, Y3
	VEXTRACTF128 $1, Y2, X6
	VCVTPS2PD X6, Y6
	VADDPD Y3, Y4, Y4
	VADDPD Y6, Y5, Y5
	ADDQ $32, SI
	DECQ CX
	JNZ  sumloop

sumdone:
	VADDPD Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPD X5, X4, X4
	VHADDPD X4, X4, X4
	MOVSD X4, ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX2(src *float32, n int) float32
// max of src[:n], n a multiple of 8 and > 0; NaN if any element is NaN.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS ·expTab+384(SB), Y1
	VXORPS Y3, Y3, Y3
	SHRQ $3, CX
	JZ   maxdone

maxloop:
	VMOVUPS (SI), Y0
	VMAXPS Y1, Y0, Y1
	VCMPPS $3, Y0, Y0, Y2 // unordered: NaN lanes
	VORPS Y2, Y3, Y3
	ADDQ $32, SI
	DECQ CX
	JNZ  maxloop

maxdone:
	VEXTRACTF128 $1, Y1, X2
	VMAXPS X2, X1, X1
	VPERMILPS $0x4e, X1, X2
	VMAXPS X2, X1, X1
	VPERMILPS $0xb1, X1, X2
	VMAXPS X2, X1, X1
	VTESTPS Y3, Y3
	JZ   maxret
	VPCMPEQD X1, X1, X1 // all ones: a NaN

maxret:
	MOVSS X1, ret+16(FP)
	VZEROUPPER
	RET
