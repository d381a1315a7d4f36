"""The package's layers hold: the import-linter contract in pyproject.toml passes, catches an upward import, and no
module imports itself back through others (no cycle). Every module says what it is for and stays under 700 lines."""
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from safs_lite.paths import REPO_ROOT

LINT = [sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"})


def test_the_layers_contract_is_kept():
    done = _lint(REPO_ROOT, REPO_ROOT)
    assert done.returncode == 0 and "Contracts: 1 kept, 0 broken." in done.stdout, done.stdout[-3000:] + done.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(REPO_ROOT / "safs_lite", tmp_path / "safs_lite", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    pruning = tmp_path / "safs_lite" / "method" / "pruning.py"
    pruning.write_text(pruning.read_text() + "\nfrom ..teach import widgets  # noqa: E402,F401\n")
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0 and "safs_lite.method.pruning -> safs_lite.teach.widgets" in done.stdout, done.stdout


def _cycles(graph) -> list[list[str]]:
    """Every import cycle between modules (one per strongly connected component of more than one module)."""
    modules = sorted(m for m in graph.modules if not graph.find_children(m))  # modules, not packages
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("safs_lite", exclude_type_checking_imports=True)
    assert _cycles(graph) == []
    graph.add_import(importer="safs_lite.method.activations", imported="safs_lite.method.pruning")
    graph.add_import(importer="safs_lite.method.pruning", imported="safs_lite.method.activations")
    assert _cycles(graph) == [["safs_lite.method.activations", "safs_lite.method.pruning"]]  # the check can fail


def test_every_module_says_what_it_is_for_and_stays_readable():
    import ast

    for path in sorted((REPO_ROOT / "safs_lite").rglob("*.py")):
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(REPO_ROOT)}: no module docstring"
        assert len(text.splitlines()) <= 700, f"{path.relative_to(REPO_ROOT)}: {len(text.splitlines())} lines"
