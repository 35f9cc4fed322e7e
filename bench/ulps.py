"""``python -m bench ulps``: the accuracy of the C kernels' float32 math over every float32.

cpp_math's docstring documents each function's error against float64 (``tests/
test_codegen_cpu_math.py`` checks those bounds on a sweep of about a million values
through compiled graphs); this is the exhaustive check behind the numbers: a C program
built from ``cpp_math.SOURCE`` with the kernels' compiler and flags (``cpp_build``), run
over all 2^32 bit patterns (``--stride`` N: every Nth), comparing each function's
vectorized results with glibc's float64 function. Per function it prints the largest
error in ulps of the float32 result (the spacing of denormals below the normal range, as
the test measures it), where, and the count of results whose NaN-ness or infinity
differs (must be 0). A function's inputs are its domain: ``capture_expf_nonpositive``
takes x <= 0 and NaN only (softmax's v - max(v)). ``capture_sigmoidf`` is eager's formula
on our exp (the test compares their bits), not here. 3-4 minutes per function at stride
1 on one core of this machine; not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

# C function -> (float64 reference expression in x, inputs: "all" or "nonpositive")
FUNCTIONS = {
    "capture_expf": ("exp(x)", "all"),
    "capture_expf_nonpositive": ("exp(x)", "nonpositive"),
    "capture_tanhf": ("tanh(x)", "all"),
    "capture_erff": ("erf(x)", "all"),
}

_CHECK = r'''
#include <stdio.h>
#include <stdlib.h>
static double ulp_of(double exact) {
    float rounded = fabsf((float)exact);
    int e;
    frexpf(rounded < 0x1p-126f ? 0x1p-126f : rounded, &e);
    return ldexp(1.0, e - 24);
}
int main(int argc, char **argv) {
    uint64_t stride = strtoull(argv[1], 0, 10);
    static float xs[1 << 16], ys[1 << 16];
    double worst = 0.0; float worst_x = 0.0f; long specials_apart = 0, checked = 0;
    for (uint64_t next = 0; next < (1ull << 32);) {
        int m = 0;
        for (; next < (1ull << 32) && m < (1 << 16); next += stride) {
            uint32_t u = (uint32_t)next; float x; memcpy(&x, &u, 4);
            if (DOMAIN_NONPOSITIVE && x > 0.0f) continue;
            xs[m++] = x;
        }
        #pragma omp simd
        for (int i = 0; i < m; i++) ys[i] = FUNCTION(xs[i]);
        for (int i = 0; i < m; i++) {
            double x = xs[i], exact = REFERENCE, y = ys[i];
            float rounded = (float)exact;
            checked++;
            if (isnan(rounded) || isnan(y) || isinf(rounded) || isinf(y)) {
                if (!(isnan(rounded) && isnan(y)) && y != rounded) specials_apart++;
                continue;
            }
            double error = fabs(y - exact) / ulp_of(exact);
            if (error > worst) { worst = error; worst_x = xs[i]; }
        }
    }
    printf("%.3f %a %ld %ld\n", worst, worst_x, specials_apart, checked);
    return 0;
}
'''


def check(function: str, stride: int = 1) -> dict:
    """Largest ulp error of ``function`` over every ``stride``-th float32, and where."""
    from codegen.emit import cpp_math
    from codegen.runtime import cpp_build
    reference, domain = FUNCTIONS[function]
    tools = cpp_build.toolchain()
    head = "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n"
    defines = (f"#define FUNCTION {function}\n#define REFERENCE ({reference})\n"
               f"#define DOMAIN_NONPOSITIVE {int(domain == 'nonpositive')}\n")
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = os.path.join(tmp, "ulps.c"), os.path.join(tmp, "ulps")
        with open(source, "w") as f:
            f.write(head + cpp_math.SOURCE + defines + _CHECK)
        subprocess.run([tools.compiler, *tools.flags, source, "-o", binary, "-lm"], check=True)
        out = subprocess.run([binary, str(stride)], check=True, capture_output=True, text=True).stdout.split()
    return dict(function=function, max_ulp=float(out[0]), at=float.fromhex(out[1]), specials_apart=int(out[2]),
                checked=int(out[3]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ulps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", help="comma list (default: all): " + ", ".join(FUNCTIONS))
    parser.add_argument("--stride", type=int, default=1, help="check every Nth bit pattern (default 1: all)")
    args = parser.parse_args(argv)
    names = args.functions.split(",") if args.functions else list(FUNCTIONS)
    print(f"{'function':<26} {'max ulp':>8} {'at x':>16} {'specials apart':>14} {'inputs':>12}")
    failed = False
    for name in names:
        r = check(name, args.stride)
        failed |= r["specials_apart"] != 0
        print(f"{name:<26} {r['max_ulp']:>8.3f} {r['at']:>16.9g} {r['specials_apart']:>14} {r['checked']:>12}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
