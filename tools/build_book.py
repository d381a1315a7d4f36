"""Build the book: a static HTML site from the executed notebooks and the kit's topic pages, without running anything.

Copies the learners' README (notebooks/README.md, the landing page, with the tables of contents added), the
notebooks, their solutions and the topic pages of docs/ (docs/*.md, with every file they link outside docs/:
the figures, at the same relative paths) into build/book/src, then runs Sphinx with MyST-NB (docs/book/conf.py;
execution off), offline. Open build/book/html/index.html in a browser.

Usage:
    python tools/build_book.py [--out build/book]
"""
from __future__ import annotations

import argparse
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


def stage(src: Path) -> None:
    """Copy the README (as index.md), the notebooks, the solutions, the docs pages and what they link into `src`."""
    if src.exists():
        shutil.rmtree(src)
    (src / "solutions").mkdir(parents=True)
    (src / "docs").mkdir()
    books = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    sols = sorted(p.name for p in (NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for name in books:
        shutil.copy(NOTEBOOKS / name, src / name)
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
