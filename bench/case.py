"""One model in one mode (``Case``: the reference module, its inputs, one step) and
the comparison of a compiled run's tensors with eager's."""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch


def _first_line(text, limit: int = 160) -> str:
    text = str(text).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {_first_line(e)}"


def _tensors(out) -> list:
    """Every tensor in a (nested) output, in a fixed order (ModelOutput is a dict)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for k in out for t in _tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in _tensors(v)]
    return []


def _compare(pairs, rtol: float, atol: float) -> tuple[bool, float, str]:
    """(all close, max abs difference, first mismatch) over (name, got, expected) pairs."""
    ok, worst, first_bad = True, 0.0, ""
    for name, got, want in pairs:
        if got is None or want is None:
            if got is not want:
                ok = False
                first_bad = first_bad or f"{name}: {'missing' if got is None else 'unexpected'}"
            continue
        if got.shape != want.shape or got.dtype != want.dtype:
            ok = False
            first_bad = first_bad or f"{name}: {tuple(got.shape)} {got.dtype} vs eager {tuple(want.shape)} {want.dtype}"
            continue
        g, w = got.detach().float().cpu(), want.detach().float().cpu()
        diff = (g - w).abs()
        finite = torch.isfinite(w)
        if not torch.equal(torch.isfinite(g), finite):
            ok = False
            first_bad = first_bad or f"{name}: non-finite values differ"
        err = float(diff[finite].max()) if finite.any() else 0.0
        worst = max(worst, err)
        if not torch.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            ok = False
            first_bad = first_bad or f"{name}: max abs diff {err:.3g}"
    return ok, worst, first_bad


class Case:
    """One model in one mode: the reference module, inputs, and how to run a step."""

    def __init__(self, spec, mode: str, device: str):
        self.spec, self.mode, self.device = spec, mode, device
        self.train = mode == "train"
        self.base = spec.make().to(device).train(self.train)
        self.inputs = self._inputs(1)
        self.other_inputs = self._inputs(2)

    def _inputs(self, seed):
        return tuple(t.to(self.device) if isinstance(t, torch.Tensor) else t for t in self.spec.inputs(seed))

    def fresh(self):
        return copy.deepcopy(self.base)

    def grad_context(self):
        return torch.enable_grad() if self.train else torch.no_grad()

    def step(self, model, fn, inputs):
        """Run one step of ``fn`` (model or its compiled form); return what to compare."""
        with self.grad_context():
            if self.train:
                model.zero_grad(set_to_none=True)
                out = fn(*inputs)
                self.spec.main_output(out).float().sum().backward()
            else:
                out = fn(*inputs)
        pairs = [(f"output[{i}]", t) for i, t in enumerate(_tensors(out))]
        if self.train:
            pairs += [(f"grad {n}", p.grad) for n, p in model.named_parameters()]
        return pairs

    def buffers(self, model):
        return [(f"buffer {n}", b) for n, b in model.named_buffers()]

    def timed_callable(self, model, fn):
        inputs = self.inputs
        if not self.train:
            return lambda: fn(*inputs)
        main = self.spec.main_output

        def train_step():
            model.zero_grad(set_to_none=True)
            main(fn(*inputs)).float().sum().backward()
        return train_step


def _zip_pairs(got, want):
    want_d = dict(want)
    names = [n for n, _ in want] + [n for n, _ in got if n not in want_d]
    got_d = dict(got)
    return [(n, got_d.get(n), want_d.get(n)) for n in names]
