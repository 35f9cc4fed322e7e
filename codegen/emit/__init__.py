"""Emission: Triton source per kernel (``triton``, op spellings in ``triton_ops``), the
Python wrapper that launches them (``wrapper``), and ahead-of-time sm_90 checks (``sm90``)."""
