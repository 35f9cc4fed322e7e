"""capture: a Dynamo-style JIT for PyTorch.

``@capture.compile`` intercepts a function's frames (PEP 523), traces their bytecode
into torch.fx graphs behind guards and hands the graphs to a backend.
"""
from capture import logs as _logs
from capture.api import compile, explain, reset, CompiledModule, ExplainOutput
from capture.dynamic import mark_dynamic, mark_static
from capture.exc import (BackendCompilerFailed, BackendFallbackWarning, BackendOutputMismatch,
                         BackendReturnedNonCallable, BreakReason, InternalError, InternalErrorWarning, Unsupported)
from capture.report import Report, build as _build_report


def report(fn=None) -> Report:
    """Guard/recompile report for ``fn`` (or every compiled frame); see capture.report."""
    return _build_report(fn)


_logs.configure_from_env()

__all__ = ["compile", "explain", "reset", "report", "Unsupported", "BreakReason", "InternalError", "InternalErrorWarning",
           "CompiledModule", "ExplainOutput", "Report", "mark_dynamic", "mark_static", "BackendCompilerFailed",
           "BackendReturnedNonCallable", "BackendOutputMismatch", "BackendFallbackWarning"]
