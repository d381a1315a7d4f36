"""Measure every notebook's runtime as a new user meets it, and read the time each committed notebook printed.

Runs each notebook top to bottom with nbconvert (a fresh kernel each) in empty temporary data, runs and scratch
folders (nothing cached; without SAFS_DATA the kit falls back to the offline 5,000-image MNIST subset, as on a
fresh clone; set SAFS_DATA for full MNIST), one after the other, and records the wall time including kernel
start. Beside it, the time the committed notebook's own last cell printed (the run whose outputs are stored, on
the data it names). Writes results/notebook_runtimes.json and prints the table docs/notebooks.md quotes.

    python tools/notebook_runtimes.py                 # all notebooks, offline subset (about 10 min on 2 cores)
    python tools/notebook_runtimes.py 03 07           # some of them (merged into the file)
    python tools/notebook_runtimes.py --docs-only     # after re-executing a notebook: its printed time into the docs
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "results" / "notebook_runtimes.json"
PRINTED = re.compile(r"(?:this run(?: took)?:? (\d+) s|notebook compute: ([\d.]+) s)")


def printed_time(path: Path) -> float | None:
    """The seconds the committed notebook's last timing line printed ('this run: N s ...' or 'notebook compute')."""
    found = None
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            for m in PRINTED.finditer("".join(out.get("text", ""))):
                found = float(m[1] or m[2])
    return found


DOCS = ROOT / "docs" / "notebooks.md"
DOCS_ROW = re.compile(r"^(\| `(\d\d_\w+\.ipynb)` \|.*\| \d+ s \| )(\d+)( s \()", re.M)


def update_docs(path: Path = DOCS) -> bool:
    """Set the "committed run" column of docs/notebooks.md to what each committed notebook's last cell printed
    (nothing is executed); True if the page changed."""
    text = path.read_text()
    new = DOCS_ROW.sub(lambda m: f"{m[1]}{round(printed_time(NOTEBOOKS / m[2]))}{m[4]}", text)
    if new != text:
        path.write_text(new)
    return new != text


def load_avg() -> float:
    return os.getloadavg()[0]


def measure(path: Path, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("data", "runs", "scratch", "out"):
            (Path(tmp) / sub).mkdir()
        env = {**env, "SAFS_RUNS": f"{tmp}/runs", "SAFS_SCRATCH": f"{tmp}/scratch"}
        env.setdefault("SAFS_DATA", f"{tmp}/data")
        before = load_avg()
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                               "--ExecutePreprocessor.timeout=3600", "--output-dir", f"{tmp}/out", str(path)],
                              env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
    return {"wall_s": round(wall, 1), "ok": done.returncode == 0, "error": done.stderr[-500:] if done.returncode else "",
            "load_before": round(before, 2), "load_after": round(load_avg(), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("which", nargs="*", help="notebook numbers (default: all)")
    p.add_argument("--docs-only", action="store_true", help="only copy each committed notebook's printed time "
                   "into docs/notebooks.md (after a notebook was re-executed); runs nothing")
    args = p.parse_args(argv)
    if args.docs_only:
        print(f"{DOCS}: {'updated' if update_docs() else 'already current'}")
        return 0
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    unknown = set(args.which) - {q.name[:2] for q in paths}
    if unknown:
        p.error(f"no notebook numbered {sorted(unknown)}; valid: {[q.name[:2] for q in paths]}")
    chosen = [q for q in paths if not args.which or q.name[:2] in args.which]
    data = "SAFS_DATA=" + os.environ["SAFS_DATA"] if os.environ.get("SAFS_DATA") else "offline subset (no SAFS_DATA)"
    record = json.loads(OUT.read_text()) if OUT.exists() else {"notebooks": {}}
    for path in chosen:
        r = measure(path, dict(os.environ))
        r.update(data=data, cores=os.cpu_count(), date=time.strftime("%Y-%m-%d"), committed_printed_s=printed_time(path))
        record["notebooks"][path.name] = r
        OUT.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        update_docs()
        print(f"{path.name}: {r['wall_s']:.0f} s wall ({'ok' if r['ok'] else 'FAILED'}; load {r['load_before']} -> "
              f"{r['load_after']}); the committed run printed {r['committed_printed_s']} s", flush=True)
    print("\n| notebook | fresh clone, nothing cached | the committed run printed |\n|---|---|---|")
    for name, r in sorted(record["notebooks"].items()):
        printed = f"{r['committed_printed_s']:.0f} s" if r["committed_printed_s"] else "none printed"
        print(f"| `{name}` | {r['wall_s']:.0f} s ({r['data']}, load {r['load_before']:.1f}) | {printed} |")
    return 0 if all(r["ok"] for r in record["notebooks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
