"""README.md and the topic pages of docs/: every relative link resolves, and every page is reachable from README.md.

A Markdown link or image (`[text](target)`, `![alt](target)`, or an HTML `<a href>` / `<img src>`) whose target is a
relative path must name an existing file or folder, relative to the page that holds it; a `#anchor` on a Markdown
target (or alone: the same page) must name one of that file's headings, slugged as GitHub slugs them. Links inside
code fences and inline code are not links. Every docs/*.md page must be reachable from README.md by following such
links. The checks only read files.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside code fences, inline code removed."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, INLINE_CODE.sub("", line)))
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown and HTML link and image in the prose of `text`."""
    found = []
    for number, line in prose_lines(text):
        for m in MD_LINK.finditer(line):
            found.append((number, m.group(1).strip("<>")))
        for m in HTML_LINK.finditer(line):
            found.append((number, m.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = unicodedata.normalize("NFC", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text, GitHub-style: a repeated slug gets -1, -2, ... appended."""
    seen: Counter[str] = Counter()
    out = set()
    fence = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
            continue
        h = ATX.match(line) if fence is None else None
        if h:
            base = slug(h.group(2))
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def broken_links(page: Path, root: Path) -> list[str]:
    """One line per relative link of `page` that names no file inside `root`, or a heading its file lacks."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, target in links(text):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http:, https:, mailto: ...: not files
        path, _, anchor = target.partition("#")
        where = f"{page.relative_to(root)}:{number}: {target}"
        dest = page if not path else (page.parent / path).resolve()
        if path.startswith("/") or not (dest == root or root in dest.parents):
            problems.append(f"{where}: points outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix.lower() == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(root)}")
    return problems


def reachable(start: Path, root: Path) -> set[Path]:
    """The Markdown files reachable from `start` by following relative links."""
    seen, todo = set(), [start.resolve()]
    while todo:
        page = todo.pop()
        if page in seen or not page.is_file():
            continue
        seen.add(page)
        for _, target in links(page.read_text(encoding="utf-8")):
            path = target.partition("#")[0]
            if path and not SCHEME.match(path) and path.lower().endswith(".md"):
                todo.append((page.parent / path).resolve())
    return seen


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", [p.relative_to(ROOT).as_posix() for p in pages(ROOT)])
def test_every_relative_link_resolves(page):
    problems = broken_links(ROOT / page, ROOT)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_reachable_from_the_readme():
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert docs, "no docs pages"
    found = reachable(ROOT / "README.md", ROOT)
    missing = [p.relative_to(ROOT).as_posix() for p in docs if p.resolve() not in found]
    assert not missing, f"docs pages no link path from README.md reaches: {missing}"


def test_the_checks_name_broken_links_anchors_and_unreachable_pages(tmp_path):
    """The checks on a small tree of their own (in tmp_path): each kind of fault is named, a sound link is not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    (tmp_path / "README.md").write_text(
        "# Top\n\n## Setup: two commands\n\n[ok](docs/a.md#the-gpu-check-gpu_checkpy) [self](#setup-two-commands)\n"
        "![fig](figures/a.png) [gone](docs/missing.md) [bad anchor](docs/a.md#nope) <img src=\"figures/b.png\">\n"
        "`[in code](nowhere.md)`\n\n```\n[in a fence](nowhere.md)\n```\n[web](https://example.org/x.md)\n")
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## The GPU check: `gpu_check.py`\n\n![f](../figures/a.png)\n"
                                            "## A\n\n[dup](#a-1) [up](../../outside.md)\n")
    (tmp_path / "docs" / "lonely.md").write_text("# Lonely\n")
    problems = broken_links(tmp_path / "README.md", tmp_path)
    assert [p.rsplit(": ", 1)[0] for p in problems] == [
        "README.md:6: docs/missing.md", "README.md:6: docs/a.md#nope", "README.md:6: figures/b.png"], problems
    assert any("no heading with anchor #nope" in p for p in problems)
    assert broken_links(tmp_path / "docs" / "a.md", tmp_path) == [
        "docs/a.md:8: ../../outside.md: points outside the repository"]
    found = reachable(tmp_path / "README.md", tmp_path)
    assert (tmp_path / "docs" / "a.md").resolve() in found
    assert (tmp_path / "docs" / "lonely.md").resolve() not in found


def test_github_slugs():
    assert slug("Table 1: LeNet-5 / MNIST, 99% layer-wise sparsity, `--preset cpu`") == \
        "table-1-lenet-5--mnist-99-layer-wise-sparsity---preset-cpu"
    assert slug("On a GPU: `benchmarks/gpu_check.py`") == "on-a-gpu-benchmarksgpu_checkpy"
    assert slug("The notebooks as a book (`make book`)") == "the-notebooks-as-a-book-make-book"


def test_the_book_stages_every_file_the_docs_pages_link(tmp_path):
    """`make book` copies the docs pages with every file they show or link, so each relative link resolves there too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    src = tmp_path / "src"
    build_book.stage(src)
    staged = sorted((src / "docs").glob("*.md"))
    assert [p.name for p in staged] == [p.name for p in sorted((ROOT / "docs").glob("*.md"))]
    index = (src / "index.md").read_text()
    assert all(f"docs/{p.stem}>" in index or f"docs/{p.stem}\n" in index for p in staged), "a page outside the toctree"
    problems = [p for page in staged for p in broken_links(page, src)]
    assert not problems, "files the book lacks:\n" + "\n".join(problems)
