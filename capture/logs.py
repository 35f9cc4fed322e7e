"""Loggers named in CAPTURE_LOGS (graph_breaks, recompiles, guards, bytecode, graph, output_code,
dynamic: which sizes became symbolic and which were specialized, with the line)."""
from __future__ import annotations

import logging
import os

KINDS = ("graph_breaks", "recompiles", "guards", "bytecode", "graph", "output_code", "dynamic")


def get(kind: str) -> logging.Logger:
    return logging.getLogger(f"capture.{kind}")


def configure_from_env(value: str | None = None):
    value = os.environ.get("CAPTURE_LOGS", "") if value is None else value
    wanted = {k.strip() for k in value.split(",") if k.strip()}
    for kind in wanted:
        if kind not in KINDS:
            raise ValueError(f"CAPTURE_LOGS: unknown log kind {kind!r}; known: {', '.join(KINDS)}")
        logger = get(kind)
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(f"[capture.{kind}] %(message)s"))
            logger.addHandler(handler)
