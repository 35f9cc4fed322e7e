"""Every heuristic and threshold of the code generator, each with its reason.

Nothing here changes process state: Triton options are passed explicitly where kernels
are launched or compiled (``TRITON_OPTIONS``).
"""
from __future__ import annotations

import os
from pathlib import Path

# FP fusion contracts a*b + c into one fma. Eager rounds after every op, and Triton 3.9
# warns that its default (enabled) flips in 3.10: turn it off explicitly at every launch
# and ahead-of-time compile, so results match eager's rounding and stay the same across
# Triton versions (without touching the user's environment or their own kernels).
TRITON_OPTIONS = {"enable_fp_fusion": False}

# Pointwise kernels: 1024 elements per program is 8 fp32 values per thread at 4 warps —
# two 128-bit loads per operand, enough in flight to saturate HBM, few enough registers
# for long fused chains. Small tensors get one right-sized program instead.
POINTWISE_MAX_BLOCK = 1024
POINTWISE_MIN_BLOCK = 16          # below this the block is mostly masked lanes
ELEMENTS_PER_WARP = 256           # 8 elements per thread

# Row (reduction) kernels. A row of at most PERSISTENT_MAX_COLS elements is held in
# registers whole ("persistent"): read once, reduced, normalised, written — softmax and
# layer norm in one pass over memory. Longer rows loop over LOOP_COLS-wide chunks, one
# loop per reduction plus one for the stores (re-reading the row, never spilling).
PERSISTENT_MAX_COLS = 2048
LOOP_COLS = 1024
# Elements (rows x cols) one program holds at once: 4096 fp32 at 8 warps is 16 per
# thread per live value, which keeps several live values under ~128 registers (no spills
# on sm_90, checked by the tests with ptxas -v).
ROW_BLOCK_ELEMENTS = 4096
MAX_WARPS = 8

# A reduction of the whole tensor (one row) runs as one program until reductions are
# split across programs. Elementwise work fused into it would run on that one program
# too, so it joins only when the row fits one persistent block. (Normalizations with a
# few long rows still fuse: their epilogue reads the rows they already own.)
MIN_ROWS_FOR_ELEMENTWISE = 2

# A 2-d convolution on the CPU runs channels-last: oneDNN's native layout, ~30% faster
# than NCHW for the small convs of the model suite (input and weight are converted by
# our kernels, which write the producers channels-last when they can; the output stays
# channels-last for the kernels that read it; graph outputs keep eager's strides).
CHANNELS_LAST_CONV_ON_CPU = True
# ...but not in training graphs: their saved activations and the convolution backward
# keep eager's NCHW, so channels-last convs made our kernels write both layouts (a pooled
# activation gathered across channels): the bench CNN's training step took 9.2 ms vs
# eager's 4.4; NCHW convs in training: 2.9 ms (one thread, quiet machine).
CHANNELS_LAST_CONV_IN_TRAINING = False

# max_pool2d windows are unrolled (one load and compare per position): up to 5x5; larger
# windows run as torch's pooling kernel (an extern call).
MAX_POOL_WINDOW = 25


# A pointwise value with several consumers is realized (written once, read by each)
# unless each consumer can recompute it reading no more than it would read of the
# realized buffer: its inputs, each counted by the fraction of the output's elements it
# has (a broadcast bias ~0, an ``arange`` mask nothing, a same-shape input 1), add up to
# at most RECOMPUTE_MAX_READS. Recomputing then saves the write and the reads of the
# buffer, and fuses across iteration spaces: an attention mask built from
# ``arange``/``where`` becomes index arithmetic inside the softmax kernel instead of a
# kernel of its own (Inductor inlines the same way). A value reading more (a residual
# sum of two tensors) is realized, so chains of them are not recomputed from their
# start in every block. A long expression is realized anyway: each consumer would carry
# its RECOMPUTE_MAX_OPS operations (registers, compile time); 64 lets the index arithmetic
# of a causal + padding mask (about 46 operations in HF GPT-2) be recomputed.
RECOMPUTE_MAX_READS = 1.0
RECOMPUTE_MAX_OPS = 64


def recompute_in_consumers(reads: float, ops: int) -> bool:
    return ops <= RECOMPUTE_MAX_OPS and reads <= RECOMPUTE_MAX_READS


# A sum over at most UNROLL_REDUCTION_MAX elements along outer dimensions (not the last)
# is lowered as that many loads and adds in a pointwise value instead of a reduction: it
# then fuses into its consumers (and recomputes) like any pointwise work, where a
# reduction needs a kernel over its own row space. (A sum along the last dimension reads
# contiguous rows and joins its producers' row kernel; unrolled it would repeat their
# whole expression per element.) Grouped-query attention's backward sums the gradients of the query heads
# sharing a key/value head (2-8 of them) over a middle dimension: a kernel per sum
# otherwise. 8 loads stay cheap next to a kernel launch and a buffer round trip.
UNROLL_REDUCTION_MAX = 8


def unroll_reduction(count: int) -> bool:
    return 1 <= count <= UNROLL_REDUCTION_MAX


# Matrix products (mm, bmm, addmm, baddbmm) as a ``tl.dot`` template with the pointwise
# work around them fused (epilogue: bias, activation, residual add, cast; prologue: views,
# scaling) — or torch's GEMM (cuBLAS) as an extern call:
# * tl.dot tiles need 16 rows/columns/depth; a smaller dimension (a GEMV, one token) would
#   be mostly masked lanes, where cuBLAS has kernels for the shape;
# * fp64 and integer products have no tensor-core path in the template;
# * deep products: fusing saves about 2*M*N*itemsize bytes (the product written and read
#   back) and loses a few percent of 2*M*N*K flops against cuBLAS's tuned kernels. On an
#   H100 (3.35 TB/s, ~990 dense bf16 TFLOP/s) the saving outweighs a 10% loss while
#   K < itemsize * 990e12 / (0.1 * 3.35e12), about 5900 for bf16 (and for tf32 with
#   itemsize 4 and half the flops): templates up to K = 4096.
# A symbolic extent (dynamic shapes) is judged at the smallest size the entry's guards
# admit (``sizes.least``: rows = batch x sequence with both >= 2 may be 4), not at the size
# of the call that compiled it: the choice decides which kernels the graph has, and a
# graph compiled at 18 rows would otherwise carry a template kernel per product that the
# same entry compiled at 8 rows would not (tiny GPT-2 over sequence lengths then batch
# sizes: 27 kernels instead of 20). So a product whose rows vary down to a few uses the
# library GEMM at every size (Inductor's default for products, too).
MATMUL_MIN_DIM = 16
MATMUL_MAX_K = 4096
MATMUL_DTYPES = ("float32", "float16", "bfloat16")
# An operand computed inside the template is recomputed for every tile of the other
# operand (N / BLOCK_N times): only short expressions (a scale, a cast) are fused there.
MATMUL_PROLOGUE_MAX_OPS = 4


def use_matmul_template(batch: int, m: int, n: int, k: int, dtype) -> str | None:
    """None if the Triton template should compute this product, else why the library GEMM does."""
    if str(dtype).replace("torch.", "") not in MATMUL_DTYPES:
        return f"{dtype} products stay in the library"
    if min(m, n, k) < MATMUL_MIN_DIM:
        return f"a dimension below {MATMUL_MIN_DIM} (m={m}, n={n}, k={k})"
    if k > MATMUL_MAX_K:
        return f"k={k} > {MATMUL_MAX_K}: the library's GEMM wins on deep products"
    return None


# Tiles: the first config is the heuristic (used without autotuning); the others are
# what a CUDA launch autotunes over. 64x64 tiles with 32-deep steps keep 4 warps busy on
# small problems; 128-wide tiles with 8 warps for larger ones. Three pipeline stages hide
# global-memory latency (sm_90 shared memory holds 3 x (128x32 + 32x128) half tiles
# easily), never more stages than the loop has steps. Blocks never exceed the
# (power-of-two rounded) problem: masked lanes do no work.
MATMUL_CONFIGS = ((64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (128, 128, 32, 8, 3),
                  (32, 32, 32, 2, 2))
# Exact float32 products (no TF32, eager's default) are FMA loops that hold both operand
# tiles in registers: 16-deep steps, two stages, 8 warps for the wider tiles (on sm_90 a
# 64x64x32 tile at 3 stages spills, 64x64x16 at 2 stages uses 112 registers).
MATMUL_FMA_CONFIGS = ((64, 64, 16, 4, 2), (128, 64, 16, 8, 2), (64, 128, 16, 8, 2), (128, 128, 16, 8, 2),
                      (32, 32, 16, 4, 2))


def matmul_configs(m: int, n: int, k: int, fma: bool = False) -> list:
    """Tile configs (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages), heuristic first;
    ``fma``: for exact float32 products (see above)."""
    out = []
    for bm, bn, bk, warps, stages in (MATMUL_FMA_CONFIGS if fma else MATMUL_CONFIGS):
        c = {"BLOCK_M": max(16, min(bm, next_power_of_2(m))), "BLOCK_N": max(16, min(bn, next_power_of_2(n))),
             "BLOCK_K": max(16, min(bk, next_power_of_2(k))), "num_warps": warps, "num_stages": stages}
        # small tiles, fewer warps; FMA loops keep 4 (a 32x32x16 fp32 tile at 2 warps spills)
        c["num_warps"] = min(warps, max(4 if fma else 1, c["BLOCK_M"] * c["BLOCK_N"] // 512))
        # no deeper pipeline than the loop has steps (3 stages over 2 steps spills on sm_90)
        c["num_stages"] = max(1, min(stages, -(-k // c["BLOCK_K"])))
        if c not in out:
            out.append(c)
    return out[:AUTOTUNE_MAX_CONFIGS]


# Attention (q @ kᵀ -> mask -> softmax -> @ v) as one flash-attention kernel: a program
# holds BLOCK_M query rows and their whole head (head_dim and v's width up to
# ATTENTION_MAX_HEAD_DIM, as FlashAttention) and streams keys in BLOCK_KV blocks with an
# online softmax, so the scores never reach memory. tl.dot needs 16-deep heads.
ATTENTION_MIN_HEAD_DIM = 16
ATTENTION_MAX_HEAD_DIM = 256
# (BLOCK_M, BLOCK_KV, num_warps, num_stages); half types on tensor cores, exact float32
# (FMA) with small tiles over 8 warps: both operand tiles and the accumulator live in
# registers (on sm_90 with 32-wide heads 32x32 tiles at 4 warps spill 16 bytes, at 8 warps
# take 63 registers; 32x64 at 4 warps spill 148).
ATTENTION_CONFIGS = ((64, 64, 4, 2), (128, 64, 8, 2), (64, 32, 4, 2), (32, 32, 4, 2))
ATTENTION_FMA_CONFIGS = ((32, 32, 8, 1), (64, 32, 8, 1), (64, 32, 4, 1), (32, 16, 4, 1))
# Wider heads hold wider q and accumulator tiles. On sm_90, exact float32 at 64-wide heads
# spills 672 bytes with 64x32 tiles over 4 warps, at 128-wide ones 728 over 8 warps, at
# 256-wide ones 536 even with 32x32 over 8 warps; half types at 256-wide heads spill with
# 64x32 or 32x32 tiles over 4 warps (168, 68 bytes). Keyed by the widest head they hold.
ATTENTION_CONFIGS_WIDE = {256: ((64, 64, 4, 2), (64, 64, 8, 2))}
ATTENTION_FMA_CONFIGS_WIDE = {64: ((32, 32, 8, 1), (64, 32, 8, 1), (32, 16, 4, 1)),
                              128: ((32, 32, 8, 1), (32, 16, 4, 1)), 256: ((16, 16, 8, 1), (16, 32, 8, 1))}


def _attention_table(head_dim: int, v_dim: int, fma: bool) -> tuple:
    wide = ATTENTION_FMA_CONFIGS_WIDE if fma else ATTENTION_CONFIGS_WIDE
    fitting = [width for width in sorted(wide) if max(head_dim, v_dim) <= width]
    if max(head_dim, v_dim) <= (32 if fma else 128) or not fitting:
        return ATTENTION_FMA_CONFIGS if fma else ATTENTION_CONFIGS
    return wide[fitting[0]]


def use_attention_template(batch, rows, keys, head_dim, v_dim, dtype) -> str | None:
    """None if the fused kernel should compute this attention, else why not."""
    if str(dtype).replace("torch.", "") not in MATMUL_DTYPES:
        return f"{dtype} attention is not fused"
    if not all(ATTENTION_MIN_HEAD_DIM <= d <= ATTENTION_MAX_HEAD_DIM for d in (head_dim, v_dim)):
        return f"head sizes {head_dim}, {v_dim} outside {ATTENTION_MIN_HEAD_DIM}..{ATTENTION_MAX_HEAD_DIM}"
    return None


def attention_configs(rows: int, keys: int, head_dim: int, v_dim: int, fma: bool = False) -> list:
    """Launch configs (BLOCK_M, BLOCK_KV, BLOCK_D, BLOCK_N, num_warps, num_stages), heuristic first."""
    out = []
    for bm, bkv, warps, stages in _attention_table(head_dim, v_dim, fma):
        c = {"BLOCK_M": max(16, min(bm, next_power_of_2(rows))), "BLOCK_KV": max(16, min(bkv, next_power_of_2(keys))),
             "BLOCK_D": max(16, next_power_of_2(head_dim)), "BLOCK_N": max(16, next_power_of_2(v_dim)),
             "num_warps": warps, "num_stages": max(1, min(stages, -(-keys // max(16, min(bkv, next_power_of_2(keys))))))}
        if c not in out:
            out.append(c)
    return out[:AUTOTUNE_MAX_CONFIGS]


# Flash attention's backward (codegen.emit.triton_attention_bw): a program holds a
# BLOCK_M x BLOCK_N tile of scores, its probabilities and their gradient, plus two
# accumulators of head width (dk and dv, or dq) — more live registers than the forward,
# so the tiles are smaller, and chosen by head width (BLOCK_D up to 64, or 128; wider
# heads keep the op's library form). (BLOCK_M, BLOCK_N, num_warps, num_stages); the
# tables keep only configs that compile for sm_90 without spills for causal and masked
# attention at head sizes 32/64/128 (``ptxas -v``: e.g. half types at 128-wide heads,
# 64x64 dk/dv tiles spill 56 bytes at 255 registers; exact float32 at 32x32 over 8 warps
# spills 8 bytes at 32-wide heads, and at 128-wide ones only 16x16 over 8 warps keeps the
# dq kernel (q, do and dq of head width live across the loop) from spilling 200+ bytes;
# at 16- to 64-wide heads 16x32, 32x16 (4 or 8 warps) each spill 4-64 bytes in some
# compile, aligned or not, 16x16 over 8 warps in none).
ATTENTION_BACKWARD_MAX_HEAD_DIM = 128
ATTENTION_BACKWARD_CONFIGS = {64: ((64, 64, 4, 1), (64, 32, 4, 1), (32, 32, 4, 1)),
                              128: ((64, 32, 4, 1), (32, 32, 4, 1))}
ATTENTION_BACKWARD_FMA_CONFIGS = {64: ((16, 16, 8, 1),), 128: ((16, 16, 8, 1),)}


def attention_backward_configs(rows: int, keys: int, head_dim: int, v_dim: int, fma: bool = False) -> list:
    """Launch configs (BLOCK_M, BLOCK_N, BLOCK_D, BLOCK_DV, num_warps, num_stages), heuristic first."""
    width = 64 if max(head_dim, v_dim) <= 64 else 128
    out = []
    for bm, bn, warps, stages in (ATTENTION_BACKWARD_FMA_CONFIGS if fma else ATTENTION_BACKWARD_CONFIGS)[width]:
        c = {"BLOCK_M": max(16, min(bm, next_power_of_2(rows))), "BLOCK_N": max(16, min(bn, next_power_of_2(keys))),
             "BLOCK_D": max(16, next_power_of_2(head_dim)), "BLOCK_DV": max(16, next_power_of_2(v_dim)),
             "num_warps": warps, "num_stages": stages}
        if c not in out:
            out.append(c)
    return out[:AUTOTUNE_MAX_CONFIGS]


# Index arithmetic is int32 unless some tensor or loop has 2**31 elements or more.
INT32_LIMIT = 2 ** 31 - 1


# codegen.generated_kernels(): every distinct kernel generated in this process, kept
# across codegen.reset() so the test suite can compile each one for sm_90 at the end.
# Only with CAPTURE_RECORD_KERNELS=1 (tests/conftest.py sets it): in a user's process the
# list would grow with every distinct kernel for good.
RECORD_GENERATED_KERNELS = os.environ.get("CAPTURE_RECORD_KERNELS", "0") not in ("", "0")

# codegen.stats() reports the live graphs compiled since codegen.reset() (held weakly);
# at most this many of the most recent, so the list of references stays short too.
MAX_TRACKED_GRAPHS = 1000


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def warps_for(elements: int) -> int:
    return max(1, min(MAX_WARPS, next_power_of_2(elements // ELEMENTS_PER_WARP) if elements >= ELEMENTS_PER_WARP else 1))


def pointwise_config(numel: int) -> dict:
    block = max(POINTWISE_MIN_BLOCK, min(POINTWISE_MAX_BLOCK, next_power_of_2(numel)))
    return {"BLOCK_SIZE": block, "num_warps": warps_for(block)}


def dynamic_rows_config(n_rows: int, n_cols: int) -> dict:
    """Block shape of the looped kernel of a row kernel whose row length is symbolic
    (dynamic shapes). The wrapper launches it only for rows longer than
    PERSISTENT_MAX_COLS (shorter rows run the kernel's persistent variant, its block from
    ``rows_config`` at each call's sizes: ``persistent_bucket``), so its column block is
    LOOP_COLS, as a static row that long gets."""
    rows = max(1, min(next_power_of_2(n_rows), DYNAMIC_LOOP_ELEMENTS // LOOP_COLS))
    return {"persistent": False, "ROWS": rows, "COLS": LOOP_COLS, "num_warps": warps_for(rows * LOOP_COLS)}


# The looped kernel over a symbolic row length holds half a static one's block: its index
# arithmetic keeps the size symbols live, and an online softmax with a broadcast bias over
# 4 x 1024 spilled 4 bytes on sm_90 (80 registers); 2 x 1024 does not.
DYNAMIC_LOOP_ELEMENTS = ROW_BLOCK_ELEMENTS // 2


def persistent_bucket(n_rows: int, n_cols: int) -> dict:
    """The launch block of a symbolic row kernel's persistent variant at this call's sizes
    (rows of at most PERSISTENT_MAX_COLS): ``rows_config``'s, so each power-of-two bucket
    of the row length gets the block a static row of that length gets. The Triton JIT
    compiles one binary per bucket (ROWS and COLS are constexprs): at most 12 column
    buckets up to 2048, not one per size."""
    block = rows_config(n_rows, n_cols)
    return {"ROWS": block["ROWS"], "COLS": block["COLS"], "num_warps": block["num_warps"]}


def rows_config(n_rows: int, n_cols: int) -> dict:
    """Block shape for a row kernel: {"persistent", "ROWS", "COLS", "num_warps"}."""
    cols_pow2 = next_power_of_2(max(n_cols, 1))
    persistent = cols_pow2 <= PERSISTENT_MAX_COLS
    cols = cols_pow2 if persistent else LOOP_COLS
    # Short rows: several per program, so each program still moves a useful block.
    rows = max(1, min(next_power_of_2(n_rows), ROW_BLOCK_ELEMENTS // cols))
    return {"persistent": persistent, "ROWS": rows, "COLS": cols, "num_warps": warps_for(rows * cols)}


# Autotuning (real GPUs only). The heuristic config above comes first; the others are
# its neighbours, never larger per program. Half the warps on the same block holds twice
# the live values per thread, so the sm_90 test compiles the model suite's kernels at
# every config too (no spills; at most 168 registers over all the tests' kernels):
# * pointwise: a smaller block gives mid-sized tensors more programs than the 132 SMs of
#   an H100; fewer warps per block can win when the fused chain is short;
# * rows: fewer rows per program for more programs, or more warps for the same block
#   (more memory requests in flight), or half-width columns for looped rows.
# Under TRITON_INTERPRET only the heuristic config runs: the interpreter would time
# every config on the CPU, which is slow and says nothing about a GPU.
AUTOTUNE_MAX_CONFIGS = 4


def autotune_configs(kind: str, xnumel: int, rnumel: int = 1) -> list:
    """Launch configs to autotune over, the heuristic one first (dicts of constexprs + num_warps)."""
    if kind == "pointwise":
        first = pointwise_config(xnumel)
        block = first["BLOCK_SIZE"]
        candidates = [first, {"BLOCK_SIZE": block, "num_warps": max(1, first["num_warps"] // 2)},
                      {"BLOCK_SIZE": max(POINTWISE_MIN_BLOCK, block // 2), "num_warps": warps_for(block // 2)},
                      {"BLOCK_SIZE": max(POINTWISE_MIN_BLOCK, block // 4), "num_warps": warps_for(block // 4)}]
    else:
        first = rows_config(xnumel, rnumel)
        rows, cols, warps = first["ROWS"], first["COLS"], first["num_warps"]
        candidates = [first, {**first, "ROWS": max(1, rows // 2), "num_warps": warps_for(max(1, rows // 2) * cols)},
                      {**first, "num_warps": min(MAX_WARPS, warps * 2)}]
        if not first["persistent"]:
            candidates.append({**first, "COLS": cols // 2, "num_warps": warps_for(rows * cols // 2)})
    unique = []
    for c in candidates:
        c = {k: v for k, v in c.items() if k != "persistent"}
        if c not in unique:
            unique.append(c)
    return unique[:AUTOTUNE_MAX_CONFIGS]


# With symbolic sizes one kernel serves every size, but the best tile depends on the
# size: a CUDA launch autotunes once per size bucket (each symbolic extent rounded up to
# a power of two, at least SIZE_BUCKET_MIN: the blocks the configs clamp to change only
# at powers of two), over the configs the heuristics give at the bucket's sizes.
SIZE_BUCKET_MIN = 16


def size_bucket(n: int) -> int:
    return max(SIZE_BUCKET_MIN, next_power_of_2(n))


def use_autotune(device) -> bool:
    """Launch through ``triton.autotune`` only on a real CUDA device (see above)."""
    return (device is not None and getattr(device, "type", None) == "cuda"
            and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"))


# ---------------------------------------------------------------- the CPU (C) emitter

# An OpenMP parallel loop costs a fork/join of a few microseconds (libgomp, 2 cores
# here); 32K float32 elements of a light fused op take ~10 µs on one core, so smaller
# kernels run on the calling thread alone. The thread count is torch's (the same libgomp).
CPP_PARALLEL_MIN_ELEMENTS = 32768

# A reduction's costly summands (exp(v - max) in softmax) are kept in a row array on the
# stack for the pass that stores them, up to this many elements (64 KiB of float32: it
# stays in L2; longer rows recompute them).
CPP_ROW_VALUES_MAX = 16384

# Column sums (a reduction along an outer dimension: bias and layer-norm weight gradients)
# run rows outside, columns inside (codegen/emit/cpp_outer.py), the rows cut into this
# many chunks: OpenMP's unit of work, each with its own row of partial sums, combined in
# chunk order (results depend on shapes only, not on threads). 8 chunks keep 2-4 cores
# busy and add 7 vector adds per column at the end.
CPP_OUTER_CHUNKS = 8
# The partial sums live on the calling thread's stack: at most this many bytes (else
# fewer chunks; the row form when even one row does not fit).
CPP_OUTER_PARTIALS_MAX_BYTES = 64 << 10

# Sums and max/min along a contiguous row keep this many partials (codegen/emit/cpp_lanes.py):
# 32 float32 = 4 AVX2 vectors, four independent add chains, so loads (not the 3-4 cycle
# add latency) set the pace; a layer norm's two sums 1.5x faster. A row that 32 does not
# divide takes the first of the others that does (3-8 vectors: a row of 1000 takes 40;
# softmax 128x1000's max pass 8 -> 2 us); rows none divides keep one vector accumulator.
CPP_SUM_LANES = (32, 40, 24, 48, 56, 64)

# Pointwise kernels calling costly functions (tanh, erf, exp, ...) run their innermost
# loop in blocks of COPIES x WIDTH elements, COPIES independent vector chains interleaved
# statement by statement (codegen/emit/cpp_pointwise.py): one chain per 8-lane AVX2
# vector waits on FMA/division latency. Measured (one thread, shared machine, blocks of
# 2/4/8 copies of 8 lanes): pointwise_chain 2.96/2.15/2.10 ns/element (3.10 plain),
# gelu(x + bias) 1.20/1.03/0.94 (1.19); 4 copies: most of the gain, a body 4x long to
# compile. 1 turns it off.
CPP_INTERLEAVE_COPIES = 4
CPP_INTERLEAVE_WIDTH = 8       # lanes of the block's vector loop: one AVX2 float32 vector

# Small float32 matrix products as the C template (codegen/emit/cpp_templates.py: dot
# products along k, the neighbouring pointwise work fused) instead of torch's GEMM, when
# b is read along k (a linear layer's weight; the lowering checks). A library call costs
# ~2-5 us before any arithmetic (dispatch, MKL's setup); the template's dot products do
# ~15 multiply-adds per ns on one core here against MKL's ~30, so it wins up to a few
# 10^4 multiply-adds (measured, shared machine: a 4x64x64 linear 1.1x eager alone, more
# with its bias and activation fused; 16x64x64 already 0.8x). float64 and half types
# stay in the library.
CPP_MATMUL_MAX_MACS = 1 << 15
# Dot products along k (a linear layer's weight is contiguous along k) are computed this
# many outputs at a time: independent vector accumulators hide the add latency (one
# accumulator waits ~4 cycles per step), and 4 x 8 lanes fit the 16 AVX2 registers.
CPP_MATMUL_DOT_BLOCK = 4


def use_cpp_matmul_template(batch: int, m: int, n: int, k: int, dtype) -> str | None:
    """None if the C template should compute this product, else why the library GEMM does."""
    if str(dtype) != "torch.float32":
        return f"{dtype} products stay in the library"
    if not all(isinstance(size, int) for size in (batch, m, n, k)):
        return "symbolic sizes (dynamic shapes): the library's GEMM serves every size"
    if batch * m * n * k == 0:
        return "an empty product"
    if batch * m * n * k > CPP_MATMUL_MAX_MACS:
        return f"{batch * m * n * k} multiply-adds > {CPP_MATMUL_MAX_MACS}: the library's GEMM wins"
    return None


# Loops are split where an access divides them (a reshape of a permuted view); each
# round splits every loop one access divides, a few rounds untangle any view chain.
CPP_MAX_LOOP_SPLITS = 4
# A pointwise loop over a cat's output runs in one loop per input (the compiler then
# drops the other inputs' predicated loads: cat+gelu 1.6x faster), for cats of fewer
# inputs than this: each segment repeats the loop body in the source.
CPP_MAX_LOOP_CUTS = 8

# Flags every generated kernel is compiled with (-O3, and -march=native / -fopenmp when
# the compiler takes them, are added by codegen.runtime.cpp_build). No fast-math: results must be
# eager's. -ffp-contract=off: eager rounds after every op, an FMA would not.
# -fno-math-errno: sqrt becomes one instruction (same values; errno is never read).
# -fno-trapping-math: lets the vectorizer turn a float select (where, relu, clamp) into a
# blend instead of a branch, which otherwise keeps the whole loop scalar (same values;
# floating-point exception flags are never read).
# -fwrapv: signed overflow wraps, as torch's integer ops do.
CPP_EXTRA_FLAGS = ("-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fwrapv")


def cpp_cache_dir() -> Path:
    """Where compiled graph libraries (and their C source) live, keyed by source hash."""
    return cache_dir().parent / "cpp_kernels"


def cache_dir() -> Path:
    """Where generated kernel modules live, keyed by the hash of their source."""
    root = os.environ.get("CAPTURE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "capture")
    return Path(root) / "triton_kernels"
