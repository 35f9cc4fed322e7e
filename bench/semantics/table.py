"""``python -m bench semantics``: pass rates per feature family, capture vs torch.compile.

Every program of the corpus (bench/semantics/fam_*.py) runs eagerly, then through
each compiler (``backend="eager"`` for both: this measures the front ends) and gets a
verdict (bench/semantics/judge.py): ``whole`` (one graph under fullgraph=True, same
outcomes as eager), ``break`` (a clean "unsupported" under fullgraph=True, right
answers with breaks allowed), ``wrong`` (an outcome differs from eager) or ``error``
(the compiler failed in itself). The table gives, per family, how many programs each
compiler took whole, and its breaks, wrong answers and errors.

``--check-marks`` also lists programs whose marks disagree with what was measured:
``tc_whole`` (torch.compile takes it whole) and ``gap`` (capture does not yet).
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import time
import warnings

import capture
from bench.semantics import marks
from bench.semantics.all_programs import load_all
from bench.semantics.corpus import run_twice
from bench.semantics.judge import CaptureFrontend, TorchCompileFrontend, judge


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench semantics", description=__doc__.split("\n\n")[0])
    p.add_argument("--families", help="comma list of families (default: all)")
    p.add_argument("--compilers", default="capture,torch.compile", help="comma list of capture, torch.compile")
    p.add_argument("--check-marks", action="store_true", help="list programs whose tc_whole/gap marks are stale")
    p.add_argument("--verbose", action="store_true", help="one line per program that is not whole")
    p.add_argument("--json", metavar="PATH", help="write every verdict as JSON")
    p.add_argument("--write-marks", action="store_true",
                   help="rewrite bench/semantics/marks.py from this measurement (all families, both compilers)")
    return p.parse_args(argv)


def measure(programs, frontends) -> list[dict]:
    """Verdicts of every program under each frontend, one frontend after the other
    (torch.compile leaves its own frame hook installed: capture runs first)."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for prog in programs:
            rows.append({"program": prog.id, "family": prog.family, "tc_whole": prog.tc_whole, "gap": prog.gap,
                         "expected": run_twice(prog, prog.fn)})
        for fe in frontends:
            for prog, row in zip(programs, rows):
                v = judge(prog, fe, row["expected"])
                row[fe.name] = v.status
                row[fe.name + " detail"] = v.detail
    for row in rows:
        del row["expected"]
    return rows


def format_table(rows, names) -> str:
    families = sorted({r["family"] for r in rows})
    head = f"{'family':<12} {'n':>4}"
    for n in names:
        head += f" | {n + ' whole':>19} {'brk':>4} {'wrong':>5} {'err':>4}"
    lines = [head, "-" * len(head)]
    for fam in families + ["ALL"]:
        sel = [r for r in rows if fam == "ALL" or r["family"] == fam]
        line = f"{fam:<12} {len(sel):>4}"
        for n in names:
            c = collections.Counter(r[n] for r in sel)
            rate = f"{c['whole']}/{len(sel)} ({100 * c['whole'] / len(sel):.0f}%)"
            line += f" | {rate:>19} {c['break']:>4} {c['wrong']:>5} {c['error']:>4}"
        if fam == "ALL":
            lines.append("-" * len(head))
        lines.append(line)
    return "\n".join(lines)


def stale_marks(rows) -> list[str]:
    out = []
    for r in rows:
        tc, cap = r.get("torch.compile"), r.get("capture")
        if tc is not None and (tc == "whole") != r["tc_whole"]:
            out.append(f"{r['program']}: marked tc_whole={r['tc_whole']}, torch.compile: {tc}")
        if cap is not None and r["gap"] and cap == "whole":
            out.append(f"{r['program']}: marked gap={r['gap']!r} but capture takes it whole")
        if cap is not None and not r["gap"] and r["tc_whole"] and cap != "whole":
            out.append(f"{r['program']}: capture {cap} ({r['capture detail'][:160]})")
    return out


def write_marks(rows):
    """marks.py from measured verdicts: torch.compile's non-whole programs and capture's gaps."""
    def entries(pairs):
        return "".join(f"    {pid!r}: {reason[:110]!r},\n" for pid, reason in sorted(pairs))
    tc = [(r["program"], ("" if r["torch.compile"] == "break" else r["torch.compile"] + ": ")
           + _reason(r["torch.compile detail"])) for r in rows if r["torch.compile"] != "whole"]
    gaps = [(r["program"], _reason(r["capture detail"])) for r in rows
            if r["torch.compile"] == "whole" and r["capture"] != "whole"]
    with open(marks.__file__) as f:
        head = f.read().split("TC_BREAKS = {")[0]
    with open(marks.__file__, "w") as f:
        f.write(f"{head}TC_BREAKS = {{\n{entries(tc)}}}\n\nGAPS = {{\n{entries(gaps)}}}\n")
    print(f"wrote {marks.__file__}: {len(tc)} torch.compile breaks, {len(gaps)} gaps")


def _reason(detail: str) -> str:
    """The reason of a verdict's detail, without the exception type and location."""
    text = detail.split(": ", 1)[1] if detail.startswith(("Unsupported: ", "InternalTorchDynamoError")) else detail
    if ": values differ" in text:  # a wrong answer: the values themselves are noise here
        text = text.split(": values differ")[0] + ": values differ"
    return text.split(" (at ")[0]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    capture.config.internal_errors = "raise"  # an internal error is a verdict, not a warning
    logging.getLogger("torch").setLevel(logging.CRITICAL)  # fake-tensor tracebacks of programs that raise
    programs = load_all()
    if args.families:
        wanted = set(args.families.split(","))
        programs = [p for p in programs if p.family in wanted]
    makers = {"capture": CaptureFrontend, "torch.compile": TorchCompileFrontend}
    order = [n for n in makers if n in args.compilers.split(",")]  # capture first (see measure)
    frontends = [makers[n]() for n in order]
    start = time.time()
    rows = measure(programs, frontends)
    names = [fe.name for fe in frontends]
    print(format_table(rows, names))
    print(f"\n{len(rows)} programs in {time.time() - start:.0f} s; whole = one graph under fullgraph=True "
          f"with eager's outcomes; brk = clean break (right answers with breaks); wrong = an outcome differs "
          f"from eager; err = the compiler failed in itself")
    if args.verbose:
        for r in rows:
            for n in names:
                if r[n] != "whole":
                    print(f"  {n:<13} {r[n]:<6} {r['program']}: {r[n + ' detail'][:200]}")
    if args.check_marks:
        stale = stale_marks(rows)
        print(f"\n{len(stale)} mark(s) disagree with the measurement" + (":" if stale else ""))
        for s in stale:
            print("  " + s)
    if args.write_marks:
        if args.families or len(names) != 2:
            raise SystemExit("--write-marks needs every family measured by both compilers")
        write_marks(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
