"""The Triton code generator (lower, fuse, emit, compile, launch) — see DESIGN.md."""
