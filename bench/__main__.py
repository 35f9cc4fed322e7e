"""``python -m bench``: the main job. Until the full model-suite harness lands it runs
the per-call overhead comparison (eager vs capture vs torch.compile)."""
import argparse

from bench import overhead


def main():
    parser = argparse.ArgumentParser(prog="python -m bench", description="eager vs compiled, side by side")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls (under a minute)")
    args = parser.parse_args()
    calls, repeats = (100, 5) if args.quick else (300, 9)
    print("Per-call time, eager vs capture(backend='eager') vs torch.compile(backend='eager')")
    overhead.print_table(overhead.measure(calls, repeats))


if __name__ == "__main__":
    main()
