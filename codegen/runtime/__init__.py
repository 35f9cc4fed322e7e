"""Runtime: the on-disk kernel cache (``cache``) and the callable ``CompiledGraph``."""
