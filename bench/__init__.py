"""Benchmarks: eager vs capture vs torch.compile, measured in one run."""
