"""The code-shape budget of issue 11 holds (python -m tools.structure): import cycles,
function-local imports, file and function lengths, package direction. A change that
exceeds a budget fails here with the offenders listed."""
from tools import structure


def test_every_structure_budget_holds():
    result = structure.measure()
    assert not result.failures(), "\n" + structure.report(result, verbose=True)


def test_the_checker_sees_cycles_local_imports_and_direction(tmp_path, monkeypatch):
    # a tiny project with one of each offence: the checker must report each
    pkg = tmp_path / "guards"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from guards import b\n")
    (pkg / "b.py").write_text("def f():\n    from guards import a\n    import capture.api\n" + "    x = 1\n" * 80)
    (tmp_path / "capture").mkdir()
    (tmp_path / "capture" / "__init__.py").write_text("")
    (tmp_path / "capture" / "api.py").write_text("import guards.a\n")
    monkeypatch.setattr(structure, "ROOT", str(tmp_path))
    monkeypatch.setattr(structure, "_ALL", None)
    modules = structure.load(("guards", "capture"))
    assert structure.cycles(modules) == [["capture.api", "guards.a", "guards.b"]]
    local = sorted((m.name, i.target) for m in modules.values() for i in m.imports if i.local)
    assert local == [("guards.b", "capture.api"), ("guards.b", "guards.a")]
    assert structure.against_direction(modules) == [("guards/b.py", 3, "capture.api")]
    assert [name for name, _, n in modules["guards.b"].functions if n > structure.MAX_FUNCTION_LINES] == ["f"]
