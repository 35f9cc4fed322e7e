"""Knobs of the front end, each with the reason for its default."""
import os

# How many cache entries one code object may collect before we stop recompiling it
# and run it eagerly: every recompile costs a full trace, and a frame that keeps
# missing its guards is usually specialising on something that changes per call.
cache_limit = 8

# Recompiles remembered per code object for capture.report (the latest ones): a
# frame that recompiles forever must not grow its record forever.
recorded_recompiles = 64

# Deepest chain of inlined user calls; deeper recursion is almost always a
# recursive algorithm that should run eagerly rather than unroll.
max_inline_depth = 40

# Longest loop we unroll while tracing; past it, tracing time dominates any gain.
max_unrolled_instructions = 200_000

# A backend given to capture.compile that fails raises capture.BackendCompilerFailed;
# options={"suppress_errors": True} runs the frame eagerly with a warning instead.
# Off by default: a failing backend is the user's to see, not ours to hide.
suppress_errors = False

debug_dir = os.environ.get("CAPTURE_DEBUG_DIR") or None

# What an internal error of capture (a bug of ours while tracing a frame) does:
# "warn" runs the frame eagerly and warns (capture.InternalErrorWarning, with the
# reason and where) so the user's program still works; "raise" raises
# capture.InternalError (chained to the bug) -- the test suite runs with "raise" so
# no internal error can pass silently as a graph break.
internal_errors = os.environ.get("CAPTURE_INTERNAL_ERRORS", "warn")

# dynamic=None: when a size change at dimension d of an input tensor causes a recompile,
# the dimensions before d become dynamic with it. Leading dimensions are batch-like
# (batch, then sequence or spatial): when the sequence length varies the batch size
# usually varies too (the last partial batch), and learning each on its own costs one
# more compile per frame. Trailing dimensions (features) stay static: they match the
# weights, and kernels specialize on them.
dynamic_leading_dims = True

# dynamic=None: once a frame recompiled because a size changed, the batch/sequence-like
# dimensions of every input tensor of the frame (capture.dynamic.size_like_dims: all dims
# of integer/bool tensors such as token ids and masks, all but the last of floating
# tensors of rank >= 3, the first of rank 1-2) are dynamic in later entries. A sweep over
# batch sizes and sequence lengths then costs one extra compile per frame in any order
# (learning one dimension at a time cost one per dimension: 3 graphs when the batch
# varied first). A dimension made symbolic that never varies costs no recompile (an op
# needing it fixed pins it with a guard) and keeps the static feature dims static.
dynamic_size_like_dims = True

# Largest numpy array computed from constants while tracing (np.array([...]),
# np.linspace(...)) that enters the graph as a constant tensor: its values are written
# into the graph as a literal; a bigger one is a graph break (it runs eagerly).
max_numpy_constant_elements = 4096
