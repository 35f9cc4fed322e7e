"""Per-call time of eager, capture (eager backend) and torch.compile(backend="eager").

Both compilers run the captured graph unchanged, so the difference to eager is the
cost of the frame hook, the guards and the rewritten frame.
"""
from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn

import capture
from bench.timing import first_call_seconds, per_call_interleaved


def one_op(x):
    return x + 1


class MLP(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def cases():
    torch.manual_seed(0)
    mlp = MLP().eval()
    return [("one-op", lambda: one_op, (torch.randn(8),)),
            ("mlp", lambda: mlp, (torch.randn(4, 64),))]


def measure(calls: int = 200, repeats: int = 7) -> list[dict]:
    import torch._dynamo  # the baseline we compare against (bench only)
    rows = []
    for name, make, args in cases():
        target = make()
        capture.reset()
        cap_fn, cap_first = first_call_seconds(lambda: capture.compile(target, backend="eager"), args)
        torch._dynamo.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tc_fn, tc_first = first_call_seconds(lambda: torch.compile(target, backend="eager"), args)
        times = per_call_interleaved({"eager": target, "capture": cap_fn, "torch.compile": tc_fn},
                                     args, calls, repeats)
        (eager_t, eager_spread), (cap_t, cap_spread), (tc_t, tc_spread) = (
            times["eager"], times["capture"], times["torch.compile"])
        with torch.no_grad():
            same = torch.allclose(cap_fn(*args), target(*args)) and torch.allclose(tc_fn(*args), target(*args))
        rows.append(dict(case=name, eager_us=eager_t * 1e6, capture_us=cap_t * 1e6, torch_compile_us=tc_t * 1e6,
                         capture_overhead_us=(cap_t - eager_t) * 1e6, torch_compile_overhead_us=(tc_t - eager_t) * 1e6,
                         capture_vs_eager=cap_t / eager_t, torch_compile_vs_eager=tc_t / eager_t,
                         capture_vs_torch_compile=cap_t / tc_t, capture_first_call_s=cap_first,
                         torch_compile_first_call_s=tc_first, spread_us=max(eager_spread, cap_spread, tc_spread) * 1e6,
                         correct=bool(same)))
    return rows


def print_table(rows: list[dict]):
    header = (f"{'case':<8} {'eager µs':>9} {'capture µs':>11} {'t.compile µs':>13} {'cap/eager':>10} "
              f"{'tc/eager':>9} {'cap/tc':>7} {'cap 1st s':>10} {'tc 1st s':>9} {'ok':>3}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<8} {r['eager_us']:>9.1f} {r['capture_us']:>11.1f} {r['torch_compile_us']:>13.1f} "
              f"{r['capture_vs_eager']:>10.2f} {r['torch_compile_vs_eager']:>9.2f} {r['capture_vs_torch_compile']:>7.2f} "
              f"{r['capture_first_call_s']:>10.3f} {r['torch_compile_first_call_s']:>9.3f} {'yes' if r['correct'] else 'NO':>3}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print_table(measure(args.calls, args.repeats))


if __name__ == "__main__":
    main()
