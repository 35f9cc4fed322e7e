"""Builds the C extensions capture._C (the frame hook) and codegen._C (calls into generated
C kernels); all other metadata is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "capture._C",
            sources=["capture/_C/eval_frame.c", "capture/_C/dict_watch.c", "capture/_C/calls.c"],
            depends=["capture/_C/dict_watch.h", "capture/_C/calls.h"],
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
        ),
        Extension(
            "codegen._C",
            sources=["codegen/_C/kernel_call.c"],
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
        ),
    ]
)
