"""``python -m capture.report script.py [args...] [--html PATH]``: run a script and print
capture's guard/recompile report when it ends."""
import argparse
import runpy
import sys

from capture.report import build as build_report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m capture.report",
                                     description="run a script and print capture's guard/recompile report at exit")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.add_argument("--html", help="also write the report as an HTML page here")
    ns = parser.parse_args(argv)
    sys.argv = [ns.script] + ns.args
    try:
        runpy.run_path(ns.script, run_name="__main__")
    finally:
        report = build_report()
        print(report)
        if ns.html:
            report.to_html(ns.html)


if __name__ == "__main__":
    main()
