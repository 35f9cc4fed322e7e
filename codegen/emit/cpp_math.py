"""float32 exp, tanh and erf written in C for the CPU emitter: branch-free, so that a loop
calling them vectorizes inline (8 lanes with AVX2) instead of calling libm per element.

Why not glibc's vector math (libmvec)? Its AVX2 ``expf`` takes a scalar path for a whole
vector as soon as one lane under- or overflows (a causal mask's -inf puts one in almost
every vector of a softmax: 7x slower), and its ``tanhf``/``erff`` cost 1-1.5 ns per
element here, more than the memory traffic of the fused kernels that call them. float64
stays on libm/libmvec (``cpp_ops.LIBM``), as do the functions not written here.

Accuracy, measured against float64 glibc on every 13th float32 bit pattern (all signs
and exponents, so specials, denormals and both ends of every range included; tanh and
erf on every float32 too: ``python -m bench ulps``); eager's
CPU kernels are Sleef's 1-ulp functions, and A&S 7.1.26 for erf (absolute error 1.5e-7):

    capture_expf    <= 1.05 ulp   (0 below -104, inf above 88.7228394, NaN stays NaN,
                                   denormal results rounded once)
    capture_tanhf   <= 1.50 ulp   (exactly +-1 past |x| = 9.01, NaN stays NaN)
    capture_erff    <= 1.57 ulp   (exactly +-1 from |x| = 3.875 on, NaN stays NaN)

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
  both. Scaling by a power of two whose product is normal is an integer add to p's
  exponent (exact, as the multiply is, and off the multiply-add ports this math is bound
  by); where NaN must pass, a multiply-add with n - n (0, or NaN) ends it, as an integer
  add turns a NaN into a number. ``capture_expf_nonpositive`` (x <= 0: softmax's terms)
  makes p 2^(n+64) so, then one rounding times 2^-64: capture_expf's bits (every float32
  checked) for one multiply and two integer operations fewer. tanh uses the reduction
  and polynomial (below). sigmoid, 1 / (1 + e^-x) as in
  eager's kernel, gives the same bits as with ``capture_expf`` with a cheaper scaling
  (e^-x below 2^-115 adds nothing to 1, so no denormal results are needed; see
  ``capture_sigmoidf``).
* tanh: |x| < 0.35: x + x z P(z), z = x^2, P of degree 3 (relative error 2e-9); else
  h / (h + 2) with the sign of x, h = e^t - 1 = 2^n (e^r - 1) + (2^n - 1) for t = 2|x|
  clamped to 20 (h / (h + 2) rounds to 1 from there on). e^r - 1 is the exp's polynomial
  without its 1 (relative accuracy kept for small h); r = t - n ln2 with ln2 in one part:
  its error, n * 1.9e-9 in r, moves h / (h + 2) by under 4e-9 relative (2 / (h + 2)
  shrinks as n grows). h / (h + 2) holds 1.5 ulp down to |x| = 0.35; below, its three
  roundings in a row (h, h + 2, the quotient) reach 2.45 ulp, and the polynomial takes
  over. The former form, 1 - 2 / (e^(2|x|) + 1), needed |x| >= 0.625 (cancellation) and a
  degree-4 polynomial below: with the integer clamp (below), 0.78 -> 0.64 ns per element.
* erf: |x| < 1: x + x Q(x^2), Q of degree 6 (the leading 1 kept out of Q so the largest
  term is exact); |x| >= 1: a degree-13 polynomial in d = min(|x|, 3.875) - 2.46
  (absolute error 2.8e-8 on [1, 3.92]; exactly 1.0f at 3.875, with and without FMA, so
  no select for the saturation: erf(3.875) is 1 - 4e-8, 0.7 ulp from 1). Its Horner
  chain of 13 dependent multiply-adds (52 cycles) bound the fused kernels by latency, so
  it is c0 + d (c1 + d (c2 + d R(d))) with R's 11 terms as two chains of 5 joined by d^6:
  three multiplies more, 7% less time per GELU(erf) kernel here, as accurate (the three
  last steps stay Horner's): 1.561 ulp over every float32 (Horner: 1.556), near |x| = 1.03.

The clamps of tanh and erf act on |x| (and 2|x|), where the float order is the integer
order of the bits: one integer min (``capture_min_nonnegative``) instead of a compare and
a blend, which would take the multiply-add ports these functions are bound by; NaN
takes the small branch (each function's last select is written so) and stays NaN there.
``python -m bench ulps`` runs the exhaustive check behind the bounds above.
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
_ERF_SATURATION = 3.875      # the large polynomial is exactly 1.0f here (with and without FMA), as erf rounds
_TANH_SMALL = (-0.33333322405815125, 0.13332349061965942, -0.05372271314263344, 0.019421333447098732)
_TANH_SMALL_LIMIT = 0.35


def _horner(coefficients, var: str, top: str | None = None) -> str:
    """C source of sum(c_k var^k) (plus ``top`` var^len, if given) by Horner's rule on CAPTURE_MULADD."""
    text, rest = (top, coefficients) if top else (f"{coefficients[-1]!r}f", coefficients[:-1])
    for c in reversed(rest):
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

/* min(v, limit) for v >= 0, by the integer order of the bits (the float order there): one
   integer min instead of a compare and a blend, which share the multiply-add ports. NaN
   comes out as limit or NaN: callers send NaN down another branch. */
static inline float capture_min_nonnegative(float v, float limit) {
    int32_t bits = capture_float_to_bits(v), top = capture_float_to_bits(limit);
    return capture_bits_to_float(bits < top ? bits : top);
}

/* e^r - 1 for |r| <= ln2/2: r + r^2 Q(r) (relative error of the sum ~0.5 ulp) */
static inline float capture_expm1_reduced(float r) {
    float r2 = r * r;
    float q = CAPTURE_MULADD(CAPTURE_MULADD(0.0013901531929150224f, r, 0.008363745175302029f), r2,
                             CAPTURE_MULADD(0.04166686162352562f, r, 0.16666573286056519f));
    q = CAPTURE_MULADD(q, r, 0.5f);
    return CAPTURE_MULADD(q, r2, r);
}

/* e^r for |r| <= ln2/2 */
static inline float capture_exp_reduced(float r) { return capture_expm1_reduced(r) + 1.0f; }

/* e^x for x in [-110, 88.7228394] or NaN (callers clamp or select outside): 2^n as two
   exact factors 2^(n//2) 2^(n - n//2), so that denormal results are rounded once; below
   -104 the result rounds to 0 by itself. The first factor is an integer add to p's
   exponent (p 2^(n//2) is normal: exact either way), the second a multiply-add with
   n - n: 0, or NaN for NaN (the integer add would turn a NaN into a number). */
static inline float capture_expf_core(float x) {
    float shifted = CAPTURE_MULADD(x, 1.44269502f, 12582912.0f);     /* n in the low mantissa bits */
    float n = shifted - 12582912.0f;
    float r = CAPTURE_MULADD(n, -0.693359375f, x);                   /* exact: n * ln2_hi has <= 17 bits */
    r = CAPTURE_MULADD(n, 2.12194440e-4f, r);                        /* ln2_lo */
    float p = capture_exp_reduced(r);
    int32_t k = capture_float_to_bits(shifted) - 0x4B400000;
    int32_t k1 = k >> 1, k2 = k - k1;
    float half = capture_bits_to_float(capture_float_to_bits(p) + (k1 << 23));
    return CAPTURE_MULADD(half, capture_bits_to_float((k2 + 127) << 23), n - n);
}

/* e^x for x <= 0 or NaN (softmax's v - max(v)): capture_expf's bits for less. n is in
   [-159, 0]: the shift 1.5 * 2^23 + 64 leaves n + 64 in its low bits, so shifted's bits
   << 23 are (n + 64) << 23, added to p's exponent: p 2^(n+64), normal and exact; then
   times 2^-64, the one rounding (denormal results rounded once), plus n - n (0, or NaN
   for NaN: the integer add would turn a NaN into a number). One integer operation and
   one multiply fewer than two factors. */
static inline float capture_expf_nonpositive(float x) {
    float c = -110.0f > x ? -110.0f : x;
    float shifted = CAPTURE_MULADD(c, 1.44269502f, 12582976.0f);
    float n = shifted - 12582976.0f;
    float r = CAPTURE_MULADD(n, -0.693359375f, c);
    r = CAPTURE_MULADD(n, 2.12194440e-4f, r);
    int32_t bits = capture_float_to_bits(capture_exp_reduced(r)) + (capture_float_to_bits(shifted) << 23);
    return CAPTURE_MULADD(capture_bits_to_float(bits), 0x1p-64f, n - n);
}

static inline float capture_expf(float x) {
    /* A clamp (NaN passes it) and one select: gcc vectorizes each to a compare and a blend. */
    float y = capture_expf_core(-110.0f > x ? -110.0f : x);
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
    float small = CAPTURE_MULADD(x * z, TANH_SMALL, x);
    float t = capture_min_nonnegative(a + a, 20.0f);         /* h/(h + 2) rounds to 1 from e^20 on */
    float shifted = CAPTURE_MULADD(t, 1.44269502f, 12582912.0f);
    float n = shifted - 12582912.0f;
    float r = CAPTURE_MULADD(n, -0.693147182f, t);      /* one-part ln2: |n| <= 29, see the docstring */
    float s = capture_bits_to_float((capture_float_to_bits(shifted) - 0x4B400000 + 127) << 23);   /* 2^n */
    float h = CAPTURE_MULADD(s, capture_expm1_reduced(r), s - 1.0f);                 /* e^t - 1 */
    float large = copysignf(h / (h + 2.0f), x);
    return a >= TANH_SMALL_LIMIT ? large : small;        /* NaN: small, x + ... = NaN */
}

static inline float capture_erff(float x) {
    float a = fabsf(x);
    float t = x * x;
    float small = CAPTURE_MULADD(x, ERF_SMALL, x);
    float d = capture_min_nonnegative(a, ERF_SATURATION) - ERF_CENTER;
    float d2 = d * d, d6 = (d2 * d2) * d2;
    float rest = CAPTURE_MULADD(d6, ERF_LARGE_HIGH, ERF_LARGE_MIDDLE);   /* two chains of 5 */
    float large = copysignf(ERF_LARGE_LOW, x);               /* exactly 1 at ERF_SATURATION */
    return a >= 1.0f ? large : small;                        /* NaN: small, x + x Q = NaN */
}
'''.replace("ERF_SMALL", _horner(_ERF_SMALL, "t")).replace("ERF_LARGE_HIGH", _horner(_ERF_LARGE[9:], "d")) \
   .replace("ERF_LARGE_MIDDLE", _horner(_ERF_LARGE[3:9], "d")).replace("ERF_LARGE_LOW", _horner(_ERF_LARGE[:3], "d", "rest")) \
   .replace("ERF_CENTER", f"{_ERF_LARGE_CENTER!r}f").replace("ERF_SATURATION", f"{_ERF_SATURATION!r}f") \
   .replace("TANH_SMALL_LIMIT", f"{_TANH_SMALL_LIMIT!r}f").replace("TANH_SMALL", _horner(_TANH_SMALL, "z"))
