"""The code-shape budget (issue 11), measured and checked: ``python -m tools.structure``.

It reads every Python file of the project with ``ast`` (nothing is imported) and reports:

* the largest import cycle among the project's modules, counting function-local
  imports (the strongly connected components of the module import graph);
* how many imports of project modules sit inside functions (each one is usually a
  cycle kept importable by hand);
* files over the line budget, functions over the line budget;
* imports against the intended direction between packages (see ``FORBIDDEN``).

Import edges are the modules an import statement names: ``import a.b`` and
``from a import b`` (``a.b`` if it is a module, else ``a``) — not the parent packages
Python also runs, which would put every module of a package in one cycle through its
``__init__``. ``__import__("a.b")`` and ``importlib.import_module("a.b")`` with a
literal name count as imports too.

Tests (``tests/``) are measured with the same rules but reported apart, with a larger
file budget: a test file is a list of independent cases, and splitting one that other
people are adding cases to costs more than it helps. Their functions keep the same
budget. The exit status is 1 when any budget is exceeded (tests/test_structure.py
runs this in the suite).
"""
from __future__ import annotations

import ast
import dataclasses
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("capture", "guards", "fx_graph", "codegen", "bench", "tools")
TESTS = "tests"

MAX_CYCLE = 6  # modules in the largest import cycle
MAX_LOCAL_IMPORTS = 40  # function-local imports of project modules, in total
MAX_FILE_LINES = 600
MAX_TEST_FILE_LINES = 1000  # see the module docstring
MAX_FUNCTION_LINES = 80

# package -> packages it must not import (DESIGN.md: capture -> fx_graph, guards, codegen;
# codegen -> fx_graph; guards and fx_graph import neither capture nor codegen).
FORBIDDEN = {
    "guards": ("capture", "codegen", "bench"),
    "fx_graph": ("capture", "codegen", "guards", "bench"),
    "codegen": ("capture", "guards", "bench"),
    "capture": ("bench",),
}


@dataclasses.dataclass
class Import:
    target: str  # project module imported
    line: int
    local: bool  # inside a function


@dataclasses.dataclass
class Module:
    name: str
    path: str  # relative to ROOT
    lines: int
    imports: list
    functions: list  # (qualified name, first line, length)


def _module_name(rel: str) -> str:
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files(top: str):
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(dirpath, name), ROOT)


class _Visitor(ast.NodeVisitor):
    """Collects imports (marking those inside functions) and function lengths."""

    def __init__(self, module: str, is_package: bool):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.raw: list = []  # (name, fromlist names or None, line, local)
        self.functions: list = []
        self._scope: list = []  # enclosing def/class names
        self._in_function = 0

    def _def(self, node):
        name = ".".join(self._scope + [node.name])
        self.functions.append((name, node.lineno, node.end_lineno - node.lineno + 1))
        self._scope.append(node.name)
        self._in_function += 1
        self.generic_visit(node)
        self._in_function -= 1
        self._scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _def

    def visit_Lambda(self, node):
        self._in_function += 1
        self.generic_visit(node)
        self._in_function -= 1

    def visit_ClassDef(self, node):
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    def visit_Import(self, node):
        for alias in node.names:
            self.raw.append((alias.name, None, node.lineno, self._in_function > 0))

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            parts = self.package.split(".") if self.package else []
            parts = parts[:len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        self.raw.append((base, [a.name for a in node.names], node.lineno, self._in_function > 0))

    def visit_Call(self, node):
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        if name in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self.raw.append((node.args[0].value, None, node.lineno, self._in_function > 0))
        self.generic_visit(node)


def _resolve(raw, known: set) -> list:
    out = []
    for base, names, line, local in raw:
        if base.split(".")[0] not in PACKAGES:
            continue
        targets = set()
        for name in names or [None]:
            if name is not None and f"{base}.{name}" in known:
                targets.add(f"{base}.{name}")
            elif base in known:
                targets.add(base)
        out += [Import(t, line, local) for t in sorted(targets)]
    return out


def load(tops=PACKAGES) -> dict:
    """module name -> Module, for every .py file under ``tops``."""
    parsed = {}
    for top in tops:
        if not os.path.isdir(os.path.join(ROOT, top)):
            continue
        for rel in _files(top):
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                text = f.read()
            name = _module_name(rel)
            visitor = _Visitor(name, rel.endswith("__init__.py"))
            visitor.visit(ast.parse(text, rel))
            parsed[name] = (rel, text.count("\n") + (not text.endswith("\n") and bool(text)), visitor)
    known = set(parsed)
    return {name: Module(name, rel, lines, _resolve(v.raw, known | _project_modules()), v.functions)
            for name, (rel, lines, v) in parsed.items()}


_ALL = None


def _extension_modules() -> set:
    """C extensions built from a source folder (``capture/_C/*.c`` is ``capture._C``):
    modules too, importing nothing of ours."""
    found = set()
    for top in PACKAGES:
        for dirpath, _, filenames in os.walk(os.path.join(ROOT, top)):
            if any(f.endswith(".c") for f in filenames) and "__init__.py" not in filenames:
                found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    return found


def _project_modules() -> set:
    global _ALL
    if _ALL is None:
        _ALL = {_module_name(rel) for top in PACKAGES if os.path.isdir(os.path.join(ROOT, top))
                for rel in _files(top)} | _extension_modules()
    return _ALL


def cycles(modules: dict) -> list:
    """Strongly connected components with more than one module, largest first (Tarjan)."""
    graph = {m: sorted({i.target for i in mod.imports if i.target in modules and i.target != m})
             for m, mod in modules.items()}
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strongconnect(v):
        work = [(v, iter(graph[v]))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, edges = work[-1]
            advanced = False
            for w in edges:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(out, key=len, reverse=True)


@dataclasses.dataclass
class Result:
    largest_cycle: list
    local_imports: list  # (module path, line, target)
    long_files: list  # (path, lines)
    long_functions: list  # (path, function, lines)
    wrong_direction: list  # (path, line, target)
    test_long_files: list
    test_long_functions: list

    def failures(self) -> list[str]:
        out = []
        if len(self.largest_cycle) > MAX_CYCLE:
            out.append(f"largest import cycle: {len(self.largest_cycle)} modules > {MAX_CYCLE}")
        if len(self.local_imports) > MAX_LOCAL_IMPORTS:
            out.append(f"function-local imports of project modules: {len(self.local_imports)} > {MAX_LOCAL_IMPORTS}")
        if self.long_files:
            out.append(f"{len(self.long_files)} source file(s) over {MAX_FILE_LINES} lines")
        if self.long_functions:
            out.append(f"{len(self.long_functions)} function(s) over {MAX_FUNCTION_LINES} lines")
        if self.wrong_direction:
            out.append(f"{len(self.wrong_direction)} import(s) against the package direction")
        if self.test_long_files:
            out.append(f"{len(self.test_long_files)} test file(s) over {MAX_TEST_FILE_LINES} lines")
        if self.test_long_functions:
            out.append(f"{len(self.test_long_functions)} test function(s) over {MAX_FUNCTION_LINES} lines")
        return out


def _long_functions(modules: dict) -> list:
    return sorted(((m.path, name, n) for m in modules.values() for name, _, n in m.functions
                   if n > MAX_FUNCTION_LINES), key=lambda t: -t[2])


def against_direction(modules: dict) -> list:
    """``(path, line, module)`` of each import a package must not make (``FORBIDDEN``)."""
    wrong = []
    for m in modules.values():
        banned = FORBIDDEN.get(m.name.split(".")[0], ())
        wrong += [(m.path, i.line, i.target) for i in m.imports if i.target.split(".")[0] in banned]
    return sorted(wrong)


def measure() -> Result:
    modules = load(PACKAGES)
    tests = load((TESTS,))
    found = cycles(modules)
    local = [(m.path, i.line, i.target) for m in modules.values() for i in m.imports if i.local]
    return Result(
        largest_cycle=found[0] if found else [],
        local_imports=sorted(local),
        long_files=sorted(((m.path, m.lines) for m in modules.values() if m.lines > MAX_FILE_LINES),
                          key=lambda t: -t[1]),
        long_functions=_long_functions(modules),
        wrong_direction=against_direction(modules),
        test_long_files=sorted(((m.path, m.lines) for m in tests.values() if m.lines > MAX_TEST_FILE_LINES),
                               key=lambda t: -t[1]),
        test_long_functions=_long_functions(tests),
    )


def report(result: Result, verbose: bool = False) -> str:
    lines = [
        f"largest import cycle:          {len(result.largest_cycle):4d} modules (budget {MAX_CYCLE})",
        f"function-local project imports:{len(result.local_imports):5d}         (budget {MAX_LOCAL_IMPORTS})",
        f"source files over {MAX_FILE_LINES} lines:   {len(result.long_files):4d}",
        f"functions over {MAX_FUNCTION_LINES} lines:       {len(result.long_functions):4d}",
        f"imports against the direction: {len(result.wrong_direction):4d}",
        f"tests: files over {MAX_TEST_FILE_LINES} lines:  {len(result.test_long_files):4d}",
        f"tests: functions over {MAX_FUNCTION_LINES} lines: {len(result.test_long_functions):4d}",
    ]
    if result.largest_cycle:
        lines.append("largest cycle: " + ", ".join(result.largest_cycle))
    for title, rows in (("files", result.long_files), ("functions", result.long_functions),
                        ("against the direction", result.wrong_direction),
                        ("test files", result.test_long_files), ("test functions", result.test_long_functions)):
        if rows:
            lines.append(f"over budget ({title}):")
            lines += ["  " + "  ".join(map(str, row)) for row in rows]
    if verbose or len(result.local_imports) > MAX_LOCAL_IMPORTS:
        by_file: dict = {}
        for path, _, target in result.local_imports:
            by_file.setdefault(path, []).append(target)
        lines.append("function-local imports by file:")
        lines += [f"  {len(v):3d}  {path}" for path, v in sorted(by_file.items(), key=lambda kv: -len(kv[1]))]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    result = measure()
    print(report(result, verbose="-v" in argv or "--verbose" in argv))
    failures = result.failures()
    if failures:
        print("\nFAILED: " + "; ".join(failures))
        return 1
    print("\nOK: every budget holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
