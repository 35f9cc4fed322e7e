"""float32 exp, tanh and erf written in C for the CPU emitter: branch-free, so that a loop
calling them vectorizes inline (8 lanes with AVX2) instead of calling libm per element.

Why not glibc's vector math (libmvec)? Its AVX2 ``expf`` takes a scalar path for a whole
vector as soon as one lane under- or overflows (a causal mask's -inf puts one in almost
every vector of a softmax: 7x slower), and its ``tanhf``/``erff`` cost 1-1.5 ns per
element here, more than the memory traffic of the fused kernels that call them. float64
stays on libm/libmvec (``cpp_ops.LIBM``), as do the functions not written here.

Accuracy, measured against float64 glibc on every 13th float32 bit pattern (all signs
and exponents, so specials, denormals and both ends of every range included); eager's
CPU kernels are Sleef's 1-ulp functions, and A&S 7.1.26 for erf (absolute error 1.5e-7):

    capture_expf    <= 1.05 ulp   (0 below -104, inf above 88.7228394, NaN stays NaN,
                                   denormal results rounded once)
    capture_tanhf   <= 1.33 ulp   (exactly +-1 past |x| = 9.01, NaN stays NaN)
    capture_erff    <= 1.55 ulp   (exactly +-1 past |x| = 3.92, NaN stays NaN)

``tests/test_codegen_cpu_math.py`` checks these bounds through compiled graphs. The
tolerances of the op tests (rtol 1.3e-6) are about 10 ulp.

No fast-math: every step is an IEEE operation, in an order the compiler keeps. Inside
these functions only, ``CAPTURE_MULADD`` is a fused multiply-add where the target has
one (``__FMA__``: one rounding instead of two, so at least as accurate; the bounds above
hold with and without it) — user-visible arithmetic is never contracted
(``-ffp-contract=off``).

The polynomials are our own weighted least-squares fits (Lawson's iteration towards
minimax) in float64, coefficients rounded to float32:

* exp: x = n ln2 + r with |r| <= ln2/2 (n by the round-to-nearest shift 1.5 * 2^23, ln2
  in two parts so that n * ln2_hi is exact); e^r = 1 + r + r^2 Q(r), Q of degree 4
  (relative error of Q 1.3e-7, i.e. 1e-8 of the result); then 2^n as two exact
  power-of-two factors 2^(n//2) and 2^(n - n//2), so that results down to the smallest
  denormal are rounded once. Inputs below -110 are clamped there (the result rounds to
  0 by itself below -104), inputs past 88.7228394 select inf at the end; NaN passes
  both. tanh calls the same core on 2|x| clamped to 20, with one power-of-two factor
  (its exp is never denormal, and never above e^20): 10 vector operations fewer than
  the full ``capture_expf``, 22% less time per tanh here. sigmoid, 1 / (1 + e^-x) as in
  eager's kernel, gives the same bits as with ``capture_expf`` with a cheaper scaling
  (e^-x below 2^-115 adds nothing to 1, so no denormal results are needed; see
  ``capture_sigmoidf``).
* tanh: |x| < 0.625: x + x z P(z), z = x^2, P of degree 4; else 1 - 2 / (e^(2|x|) + 1)
  with the sign of x (no cancellation: the result is at least 0.55 there).
* erf: |x| < 1: x + x Q(x^2), Q of degree 6 (the leading 1 kept out of Q so the largest
  term is exact); 1 <= |x| < 3.92: a degree-13 polynomial in |x| - 2.46 (absolute error
  2.8e-8); beyond, +-1.
"""
from __future__ import annotations

# Names of the C functions, by loop-IR op, for float (and half types computed in float).
FLOAT_FUNCTIONS = {"exp": "capture_expf", "tanh": "capture_tanhf", "erf": "capture_erff", "sigmoid": "capture_sigmoidf"}

_ERF_SMALL = (0.12837916612625122, -0.3761262595653534, 0.1128358542919159, -0.026853810995817184,
              0.00518832728266716, -0.0008010188466869295, 7.853844726923853e-05)
_ERF_LARGE = (0.9994966983795166, 0.0026561827398836613, -0.00653569120913744, 0.009833171032369137,
              -0.00990527868270874, 0.006796864327043295, -0.0029624926391988993, 0.0004636470985133201,
              0.0003901113523170352, -0.0003029934305232018, 5.213294207351282e-05, 2.5974215532187372e-05,
              -9.203902664012276e-06, -8.828555309037256e-08)
_ERF_LARGE_CENTER = 2.46


def _horner(coefficients, var: str) -> str:
    """C source of sum(c_k var^k) by Horner's rule on CAPTURE_MULADD."""
    text = f"{coefficients[-1]!r}f"
    for c in reversed(coefficients[:-1]):
        text = f"CAPTURE_MULADD({text}, {var}, {c!r}f)"
    return text


SOURCE = r'''
#ifdef __FMA__
#define CAPTURE_MULADD(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define CAPTURE_MULADD(a, b, c) ((a) * (b) + (c))
#endif

static inline float capture_bits_to_float(int32_t bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline int32_t capture_float_to_bits(float f) { int32_t bits; memcpy(&bits, &f, 4); return bits; }

/* e^r for |r| <= ln2/2: 1 + r + r^2 Q(r) */
static inline float capture_exp_reduced(float r) {
    float r2 = r * r;
    float q = CAPTURE_MULADD(CAPTURE_MULADD(0.0013901531929150224f, r, 0.008363745175302029f), r2,
                             CAPTURE_MULADD(0.04166686162352562f, r, 0.16666573286056519f));
    q = CAPTURE_MULADD(q, r, 0.5f);
    return CAPTURE_MULADD(q, r2, r) + 1.0f;
}

/* How capture_expf_core scales by 2^n: one factor (a caller whose result is normal); two
   exact factors 2^(n//2) 2^(n - n//2), so that denormal results are rounded once; or, for
   x <= 0 (n in [-159, 0]), p 2^(n+64), normal and exact, times 2^-64, the one rounding:
   the same bits as two factors, for two integer operations fewer. */
enum { CAPTURE_EXP_NORMAL, CAPTURE_EXP_TWO_FACTORS, CAPTURE_EXP_NONPOSITIVE };

/* e^x for x in [-110, 88.7228394] or NaN (callers clamp or select outside): below -104
   the result rounds to 0 by itself. */
static inline float capture_expf_core(float x, int scaling) {
    float shifted = CAPTURE_MULADD(x, 1.44269502f, 12582912.0f);     /* n in the low mantissa bits */
    float n = shifted - 12582912.0f;
    float r = CAPTURE_MULADD(n, -0.693359375f, x);                   /* exact: n * ln2_hi has <= 17 bits */
    r = CAPTURE_MULADD(n, 2.12194440e-4f, r);                        /* ln2_lo */
    float p = capture_exp_reduced(r);
    int32_t k = capture_float_to_bits(shifted) - 0x4B400000;
    if (scaling == CAPTURE_EXP_NORMAL)
        return p * capture_bits_to_float((k + 127) << 23);
    if (scaling == CAPTURE_EXP_NONPOSITIVE)
        return (p * capture_bits_to_float((k + 127 + 64) << 23)) * 0x1p-64f;
    int32_t k1 = k >> 1, k2 = k - k1;
    return (p * capture_bits_to_float((k1 + 127) << 23)) * capture_bits_to_float((k2 + 127) << 23);
}

/* e^x for x <= 0 or NaN (softmax's v - max(v)): capture_expf without the overflow select. */
static inline float capture_expf_nonpositive(float x) {
    return capture_expf_core(-110.0f > x ? -110.0f : x, CAPTURE_EXP_NONPOSITIVE);
}

static inline float capture_expf(float x) {
    /* A clamp (NaN passes it) and one select: gcc vectorizes each to a compare and a blend. */
    float y = capture_expf_core(-110.0f > x ? -110.0f : x, CAPTURE_EXP_TWO_FACTORS);
    return x > 88.7228394f ? (float)INFINITY : y;
}

/* 1 / (1 + e^-x), the same bits as with capture_expf, for less: below -80, e^t adds
   nothing to 1 (so no denormal scaling is needed), and 2^n is 2 * 2^(n-1), one exact
   factor for every n in [-116, 128]; past the overflow threshold the result is 0 (as
   1 / (1 + inf)). The clamp (a max) and the select pass NaN. */
static inline float capture_sigmoidf(float x) {
    float t = -x;
    float c = -80.0f > t ? -80.0f : t;
    float shifted = CAPTURE_MULADD(c, 1.44269502f, 12582912.0f);
    float n = shifted - 12582912.0f;
    float r = CAPTURE_MULADD(n, -0.693359375f, c);
    r = CAPTURE_MULADD(n, 2.12194440e-4f, r);
    float p = capture_exp_reduced(r);
    int32_t k = capture_float_to_bits(shifted) - 0x4B400000;
    float e = (p + p) * capture_bits_to_float((k + 126) << 23);
    return t > 88.7228394f ? 0.0f : 1.0f / (1.0f + e);
}

static inline float capture_tanhf(float x) {
    float a = fabsf(x);
    float z = x * x;
    float z2 = z * z;
    float pz = CAPTURE_MULADD(CAPTURE_MULADD(-0.006096924655139446f, z, 0.020997343584895134f), z2,
                              CAPTURE_MULADD(-0.05385094881057739f, z, 0.13332770764827728f));
    pz = CAPTURE_MULADD(pz, z, -0.333333283662796f);
    float small = CAPTURE_MULADD(x * z, pz, x);
    float twice = a + a;
    float e = capture_expf_core(twice > 20.0f ? 20.0f : twice, CAPTURE_EXP_NORMAL);   /* 1 - 2/(e^20 + 1) rounds to 1 */
    float large = copysignf(1.0f - 2.0f / (e + 1.0f), x);
    return a < 0.625f ? small : large;
}

static inline float capture_erff(float x) {
    float a = fabsf(x);
    float t = x * x;
    float small = CAPTURE_MULADD(x, ERF_SMALL, x);
    float d = (a > 3.92f ? 3.92f : a) - ERF_CENTER;
    float large = a > 3.92f ? 1.0f : ERF_LARGE;
    return a < 1.0f ? small : copysignf(large, x);
}
'''.replace("ERF_SMALL", _horner(_ERF_SMALL, "t")).replace("ERF_LARGE", _horner(_ERF_LARGE, "d")) \
   .replace("ERF_CENTER", f"{_ERF_LARGE_CENTER!r}f")
