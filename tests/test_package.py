"""The package's namespace: every submodule reachable by its name (issue 22 item 13)."""
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
