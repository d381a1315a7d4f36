"""The package's namespace (every submodule reachable by its name, issue 22 item 13) and docs that state the
kit's settings (issue 22 item 14)."""
import importlib
import pkgutil

import safs_lite


def test_no_package_attribute_shadows_a_submodule():
    """`safs_lite.lahc` was the function, so `import safs_lite.lahc as m; m.MOVES` raised AttributeError."""
    names = sorted(m.name for m in pkgutil.iter_modules(safs_lite.__path__) if not m.name.startswith("_"))
    assert "lahc" in names and "training" in names
    shadowing = [n for n in names if hasattr(safs_lite, n) and not isinstance(getattr(safs_lite, n),
                                                                               type(safs_lite))]
    assert shadowing == []
    for name in names:
        module = importlib.import_module(f"safs_lite.{name}")
        assert getattr(safs_lite, name) is module, name
    import safs_lite.lahc as m

    assert "reference" in m.MOVES and callable(m.lahc)


def test_the_longer_evaluations_benchmark_describes_the_cpu_preset_it_extends():
    """Issue 22, item 14: its docstring still described 3-epoch candidates at "chance level 11.4%"."""
    import ast
    from pathlib import Path

    from safs_lite.config import PRESETS

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "longer_evaluations.py"
    doc = " ".join(ast.get_docstring(ast.parse(path.read_text())).split())
    cpu = PRESETS["cpu"]
    words = {1: "one", 2: "two", 3: "three"}
    epochs = words.get(cpu.candidate_epochs, str(cpu.candidate_epochs))
    assert f"after {epochs} epoch{'s' if cpu.candidate_epochs > 1 else ''} at lr {cpu.candidate_lr:g}" in doc
    assert f"gives each HPO trial {cpu.trial_epochs} epochs" in doc
    assert "3-epoch" not in doc and "11.4%" not in doc
