"""Benchmarks: eager vs capture vs torch.compile, measured in one run."""
from bench.torchvision_cpu import make_importable as _make_torchvision_importable

# transformers imports torchvision whenever it is installed (the test extra brings it
# through timm): make PyPI's CUDA-built torchvision importable beside the CPU torch.
_make_torchvision_importable()
