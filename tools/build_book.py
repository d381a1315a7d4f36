"""Build the book: a static HTML site from the executed notebooks and the kit's topic pages, without running anything.

Copies the learners' README (notebooks/README.md, the landing page, with the tables of contents added), the
notebooks, their solutions and the topic pages of docs/ (docs/*.md, with every file they link outside docs/:
the figures, at the same relative paths) into build/book/src, then runs Sphinx with MyST-NB (docs/book/conf.py;
execution off), offline. Open build/book/html/index.html in a browser.

In the book each exercise, the quiz and the "Why?" questions are followed by their solution, folded (a
sphinx-design dropdown, closed until clicked): the solution notebook's explanation, code and stored output, taken
from notebooks/solutions/ at build time, so the book and the solution notebooks never disagree. The solution
notebooks stay in the book as pages of their own.

Usage:
    python tools/build_book.py [--out build/book]
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DOCS = ROOT / "docs"

# The topic pages in reading order, with their titles in the table of contents (README.md's "Where each topic
# lives" table links the same pages); any other docs/*.md page follows under its own title.
TOPICS = [
    ("evidence", "The evidence study"),
    ("reproducing", "Reproducing the paper"),
    ("ranking_fidelity", "Ranking fidelity"),
    ("landscape", "The whole search space"),
    ("cli", "SAFS from the command line"),
    ("own_model", "SAFS on your own model"),
    ("scaling_out", "Scaling out"),
    ("statistics", "Allocations, statistics and the mechanism"),
    ("compact_engine", "The compact engine"),
    ("kit", "The kit"),
    ("guarantees", "What the kit guarantees"),
    ("notebooks", "Notebooks: runtimes and the book"),
    ("benchmarks", "Benchmarks"),
    ("SAFS_METHOD", "The method (SAFS_METHOD.md)"),
]

# A Markdown link or image target: [text](target) or ![alt](target "title").
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def toctree(caption: str, entries: list[str]) -> list[str]:
    return ["```{toctree}", f":caption: {caption}", ":maxdepth: 1", "", *entries, "```", ""]


def toc(notebooks: list[str], topics: list[str], solutions: list[str]) -> str:
    """The toctrees appended to the landing page: the notebooks in order, the topic pages, then the solutions."""
    lines = ["", *toctree("Notebooks", notebooks), *toctree("Topics", topics), *toctree("Solutions", solutions)]
    return "\n".join(lines)


def topic_pages() -> list[tuple[str, str]]:
    """(stem, toctree title) of every docs/*.md page: TOPICS' order first, then the others by name."""
    stems = {p.stem for p in DOCS.glob("*.md")}
    known = [(s, t) for s, t in TOPICS if s in stems]
    return known + [(s, "") for s in sorted(stems - {s for s, _ in known})]


def linked_outside(page: Path) -> list[Path]:
    """The files outside docs/ and notebooks/ that a docs page links or shows, as repository paths (URLs and anchors
    skipped; the notebooks are in the book already: `notebook_links` points the links at them)."""
    found = []
    for target in LINK.findall(page.read_text()):
        path = target.split("#")[0]
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path) or path.startswith("/"):
            continue
        full = (page.parent / path).resolve()
        if full.is_file() and ROOT in full.parents and DOCS not in full.parents and NOTEBOOKS not in full.parents:
            found.append(full.relative_to(ROOT))
    return found


def notebook_links(text: str) -> str:
    """A docs page's links into notebooks/ pointed at the book's copies: the notebooks and solutions sit at the
    book's root, and notebooks/README.md is its landing page, index.md."""
    return text.replace("](../notebooks/README.md", "](../index.md").replace("](../notebooks/", "](../")


CHECK = re.compile(r'check\(\s*f?"(\d\d\.[\w{}]+)"')  # the exercise ids a code cell checks: "03.1", "03.q{k}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _text(cell: dict) -> str:
    return "".join(cell.get("source", ""))


def _checks(cell: dict) -> tuple[str, ...]:
    return tuple(CHECK.findall(_text(cell))) if cell["cell_type"] == "code" else ()


def solution_blocks(sol: dict) -> dict[tuple[str, ...], list[dict]]:
    """The solution notebook cut into blocks, keyed by the exercise ids each block's check cell checks (the quiz's
    key is `("NN.q{k}",)`), plus `("why",)` for the model answers to the "Why?" questions.

    A block runs from the markdown that opens an exercise (or from the end of the previous block) to its check
    cell; markdown right after a check cell (a sub-question's answer) stays with that block. The title and the
    set-up cells before the first exercise belong to no block; the model answers run from their heading to the
    quiz's."""
    blocks: dict[tuple[str, ...], list[dict]] = {}
    pending: list[dict] = []
    last: list[dict] | None = None
    started = in_why = False
    for cell in sol["cells"]:
        text = _text(cell).lstrip()
        heading = cell["cell_type"] == "markdown" and text.startswith("#")
        if heading and "Model answers" in text.splitlines()[0]:
            in_why, last, pending = True, None, []
            blocks[("why",)] = [cell]
            continue
        if in_why and not (heading and "Quiz" in text.splitlines()[0]) and not _checks(cell):
            blocks[("why",)].append(cell)
            continue
        in_why = False
        opens = cell["cell_type"] == "markdown" and (text.startswith("**Exercise") or "Quiz" in text.split("\n")[0])
        started = started or opens
        if not started:
            continue
        if ids := _checks(cell):
            blocks[ids] = last = pending + [cell]
            pending = []
        elif cell["cell_type"] == "markdown" and last is not None and not opens and not pending:
            last.append(cell)  # the answer to a sub-question, written after the check cell
        else:
            pending.append(cell)
            last = None
    return blocks


def _fence(body: str, lang: str, least: int = 3) -> str:
    ticks = "`" * max(least, max((len(m) for m in re.findall(r"`+", body)), default=0) + 1)
    return f"{ticks}{lang}\n{body.rstrip()}\n{ticks}"


def _outputs(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append("".join(out["text"]))
        elif "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]) + "\n")
    return ANSI.sub("", "".join(parts)).rstrip()


def dropdown(title: str, cells: list[dict]) -> str:
    """A folded sphinx-design dropdown holding `cells`: markdown as it is (headings turned to bold lines: a section
    cannot open inside a directive), code as a Python block, its stored output as a text block."""
    parts = []
    for cell in cells:
        text = _text(cell).strip()
        if cell["cell_type"] == "markdown":
            parts.append(re.sub(r"^#+\s+(.*)$", r"**\1**", text, flags=re.M))
        elif text:
            parts.append(_fence(text, "python"))
            if out := _outputs(cell):
                parts.append("Output:\n\n" + _fence(out, "text"))
    body = "\n\n".join(parts)
    outer = "`" * max(4, max((len(m) for m in re.findall(r"`+", body)), default=0) + 1)
    return f"{outer}{{dropdown}} {title}\n:class-container: safs-solution\n\n{body}\n{outer}\n"


def _title(ids: tuple[str, ...]) -> str:
    if ids == ("why",):
        return "Model answers to the \"Why?\" questions"
    if any(".q" in i for i in ids):
        return f"Answers to quiz {ids[0].split('.')[0]}"
    return "Solution to exercise " + ", ".join(ids)


def fold_solutions(nb: dict, sol: dict, name: str) -> dict:
    """The notebook with each exercise's, the quiz's and the "Why?" questions' solution inserted right after them
    as a folded dropdown. Every block of the solution notebook must find its place: a solution whose exercise the
    notebook no longer checks, or a notebook exercise with no solution, stops the build naming both."""
    blocks = solution_blocks(sol)
    asked = [ids for ids in map(_checks, nb["cells"]) if ids]
    if sorted(asked) != sorted(k for k in blocks if k != ("why",)):
        raise SystemExit(f"{name}: the notebook checks {asked} but its solutions check "
                         f"{[k for k in blocks if k != ('why',)]}")
    out = copy.deepcopy(nb)
    cells = []
    for cell in out["cells"]:
        cells.append(cell)
        key = _checks(cell) or (("why",) if cell["cell_type"] == "markdown"
                                and _text(cell).lstrip().startswith("## Why?") else None)
        if key and key in blocks:
            cells.append({"cell_type": "markdown", "id": f"folded-solution-{len(cells)}",
                          "metadata": {"tags": ["folded-solution"]},
                          "source": dropdown(_title(key), blocks[key])})
    if ("why",) in blocks and not any("folded-solution" in c["metadata"].get("tags", []) and
                                      _title(("why",)) in c["source"] for c in cells):
        raise SystemExit(f"{name}: the solutions hold model answers but the notebook has no '## Why?' section")
    out["cells"] = cells
    return out


def stage(src: Path) -> None:
    """Copy the README (as index.md), the notebooks, the solutions, the docs pages and what they link into `src`."""
    if src.exists():
        shutil.rmtree(src)
    (src / "solutions").mkdir(parents=True)
    (src / "docs").mkdir()
    books = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    sols = sorted(p.name for p in (NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for name in books:  # with each exercise's solution folded in after it
        nb = json.loads((NOTEBOOKS / name).read_text())
        sol = NOTEBOOKS / "solutions" / name
        if sol.exists():
            nb = fold_solutions(nb, json.loads(sol.read_text()), name)
        (src / name).write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    for name in sols:
        shutil.copy(NOTEBOOKS / "solutions" / name, src / "solutions" / name)
    topics = topic_pages()
    for stem, _ in topics:
        page = DOCS / f"{stem}.md"
        (src / "docs" / page.name).write_text(notebook_links(page.read_text()))
        for rel in linked_outside(page):  # figures and other files, at the same path relative to the page
            dest = src / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = (ROOT / rel).read_text() if rel.suffix == ".md" else None
            if text is not None:  # a linked Markdown file outside the toctree: a page of its own, not listed
                dest.write_text("---\norphan: true\n---\n" + text)
            else:
                shutil.copy(ROOT / rel, dest)
    readme = (NOTEBOOKS / "README.md").read_text()
    entries = [f"{title} <docs/{stem}>" if title else f"docs/{stem}" for stem, title in topics]
    (src / "index.md").write_text(readme + toc([n[:-6] for n in books], entries,
                                               [f"solutions/{n[:-6]}" for n in sols]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book", help="build folder (default build/book)")
    args = parser.parse_args(argv)
    src, html = args.out / "src", args.out / "html"
    stage(src)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "docs" / "book"),
           "-d", str(args.out / "doctrees"), str(src), str(html)]
    done = subprocess.run(cmd)
    if done.returncode == 0:
        print(f"book: {html / 'index.html'}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
