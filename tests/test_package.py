"""The package's namespace: every package and module reachable by its dotted name (issue 22 item 13), no public
name of the face shadowing one."""
import importlib
import pkgutil

import safs_lite


def test_no_package_attribute_shadows_a_submodule():
    """`safs_lite.lahc` was the function, so `import safs_lite.lahc as m; m.MOVES` raised AttributeError."""
    found = sorted(m.name for m in pkgutil.walk_packages(safs_lite.__path__, "safs_lite.")
                   if not m.name.endswith("__main__"))
    assert "safs_lite.method.lahc" in found and "safs_lite.training.loop" in found
    for name in found:
        module = importlib.import_module(name)
        parent, leaf = name.rsplit(".", 1)
        assert getattr(importlib.import_module(parent), leaf) is module, f"{name} is shadowed in {parent}"
    import safs_lite.method.lahc as m

    assert "reference" in m.MOVES and callable(m.lahc) and callable(safs_lite.train)
