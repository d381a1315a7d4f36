"""Which part of SAFS carries its gain: the evidence runs read as an operator x fine-tuning factorial.

Every 99% evidence run holds six final models on one mask, the cells of a 3 x 2 factorial:

| operators \\ fine-tuning | dense hyperparameters | stage 2 (tuned, learned alpha/beta) |
|---|---|---|
| ReLU | `magnitude_pruning` | `stage2` |
| the best single operator (scan of the library) | `uniform` | `uniform_safs` |
| LAHC's per-layer operators | `stage1` | `safs` |

The path from magnitude pruning (MP) to SAFS splits into three steps whose sum is SAFS - MP: leaving ReLU for
one good operator (`operator`: uniform - MP), stage 2 on that operator (`stage2_on_operator`: uniform_safs -
uniform) and the per-layer search on top, given stage 2 on both sides (`search_with_stage2`: SAFS -
uniform_safs). `EFFECTS` holds these, the other simple effects and the interaction of stage 2 with the operator.
Each is paired over masks (seeds) within a setting: mean, Student-t and BCa bootstrap 95% intervals, the
two-sided Wilcoxon p, the paired probability of improvement (the share of masks where the first cell wins,
ties half) and the interquartile mean of the differences.

`results/evidence/family.json` declares, before the analysis, the primary hypotheses and the budget they are
read at; `primary_family` tests them with Holm's correction within the family (statsmodels) and the
equivalence test of the per-layer search (two one-sided paired t tests, statsmodels' `ttost_paired`, margin in
the file). Every other comparison is exploratory.

Sources: a run's cells at `epochs` come from `results/evidence/finals/<run>-e<epochs>.json` (retrained by
`tools/retrain_finals.py` from the run's mask with its recorded operators and hyperparameters) or, where the
run's own final budget is `epochs`, from its results.json; the `source` column says which. A cell that failed or
is missing stays in the table as NaN with its reason, and every effect reports the masks it lacks.

    python -m safs_lite.study.factorial            # prints the factorial at 30 epochs and the primary family
"""
from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..method.operators import SEARCH_SPACE
from ..paths import figures_dir, results_dir
from ..run.folders import load_json
from .stats import N_RESAMPLES, bootstrap_interval, t_interval, wilcoxon_p

CELLS = ("magnitude_pruning", "stage2", "uniform", "uniform_safs", "stage1", "safs")
# LAHC at the scan's evaluation count (tools/equal_search.py; the cpu preset's own LAHC already scores more)
EQUAL_CELLS = ("stage1_equal", "safs_equal")
CELL_LABELS = {"magnitude_pruning": "MP (ReLU)", "stage2": "ReLU + stage 2", "uniform": "single operator",
               "uniform_safs": "single operator + stage 2", "stage1": "per-layer (LAHC)",
               "safs": "SAFS (per-layer + stage 2)"}
# effect -> (cell, reference cell, words)
EFFECTS = {
    "total": ("safs", "magnitude_pruning", "SAFS over magnitude pruning"),
    "operator": ("uniform", "magnitude_pruning", "leaving ReLU for the best single operator"),
    "stage2_on_operator": ("uniform_safs", "uniform", "stage 2 on the single operator"),
    "search_with_stage2": ("safs", "uniform_safs", "the per-layer search, stage 2 on both sides"),
    "stage2_on_relu": ("stage2", "magnitude_pruning", "stage 2 on ReLU"),
    "search_without_stage2": ("stage1", "uniform", "the per-layer search, dense fine-tuning on both sides"),
    "stage2_on_search": ("safs", "stage1", "stage 2 on the per-layer operators"),
    "operator_with_stage2": ("uniform_safs", "stage2", "the single operator, stage 2 on both sides"),
    "search_with_stage2_equal": ("safs_equal", "uniform_safs", "the per-layer search at the scan's evaluation "
                                 "count, stage 2 on both sides"),
    "search_without_stage2_equal": ("stage1_equal", "uniform", "the per-layer search at the scan's evaluation "
                                    "count, dense fine-tuning on both sides"),
}
PATH = ("operator", "stage2_on_operator", "search_with_stage2")  # MP -> uniform -> uniform_safs -> SAFS
INTERACTION = "stage2_x_operator"  # (uniform_safs - uniform) - (stage2 - MP)
RUN_NAME = re.compile(r"safs-(?P<model>[a-z0-9_]+)-(?P<dataset>[a-z_]+)-(?P<sparsity>[0-9.]+)-(?P<pruning>[a-z]+)-"
                      r"(?P<preset>[a-z]+)-s(?P<seed>\d+)$")


def evidence_root(root: str | os.PathLike | None = None) -> Path:
    return results_dir(root) / "evidence"


def setting_label(dataset: str, sparsity: float, pruning: str, preset: str) -> str:
    """'99% global (sweep)', with the dataset first when it is not MNIST."""
    text = f"{100 * sparsity:g}% {pruning} ({preset})"
    return text if dataset == "mnist" else f"{dataset} {text}"


def _committed(res: dict, cell: str) -> float | None:
    if cell in res.get("test_accuracy", {}):
        return res["test_accuracy"][cell]
    return res.get("baselines", {}).get(cell, {}).get("test_accuracy")


def load_cells(epochs: int = 30, root: str | os.PathLike | None = None, sparsity: float = 0.99,
               prefer: str = "committed") -> pd.DataFrame:
    """One row per run and cell at a final budget of `epochs`.

    `prefer` "finals" reads a retrained cell where there is one (the current kit), "committed" the run's own
    record where `epochs` is the run's own budget (the kit that made the run).

    Columns: setting, dataset, sparsity, pruning, preset, seed, run, cell, test_accuracy (NaN when missing or
    failed), source ("finals" / "committed" / "missing"), note (the error or what is missing).
    A run with neither a finals file at `epochs` nor that own budget gives rows with source "missing".
    """
    base = evidence_root(root)
    rows = []
    order = {"cpu": 0, "sweep": 1}, {"layerwise": 0, "global": 1, "erk": 2, "protected": 3}

    def sort_key(folder: Path):
        m = RUN_NAME.match(folder.name)
        return (m["dataset"] != "mnist", m["dataset"], order[1].get(m["pruning"], 9), order[0].get(m["preset"], 9),
                int(m["seed"])) if m else (True, folder.name, 0, 0, 0)

    for folder in sorted((base / "runs").glob("safs-*"), key=sort_key):
        m = RUN_NAME.match(folder.name)
        if not m or not (folder / "results.json").exists() or float(m["sparsity"]) != sparsity:
            continue
        res = load_json(folder / "results.json")
        own = res["config"]["budgets"]["finetune_epochs"]
        finals = base / "finals" / f"{folder.name}-e{epochs}.json"
        cells = load_json(finals)["cells"] if finals.exists() else None
        meta = {"setting": setting_label(m["dataset"], float(m["sparsity"]), m["pruning"], m["preset"]),
                "dataset": m["dataset"], "sparsity": float(m["sparsity"]), "pruning": m["pruning"],
                "preset": m["preset"], "seed": int(m["seed"]), "run": folder.name}
        for cell in CELLS:
            value, source, note = math.nan, "missing", ""
            if prefer == "committed" and own == epochs and _committed(res, cell) is not None:
                value, source = _committed(res, cell), "committed"
            elif cells is not None and cell in cells:
                rec = cells[cell]
                value, source, note = (math.nan, "finals", rec["error"]) if "error" in rec else \
                    (rec["test_accuracy"], "finals", "")
            elif own == epochs and _committed(res, cell) is not None:
                value, source = _committed(res, cell), "committed"
            else:
                note = f"no {epochs}-epoch final (own budget {own})" if cells is None else "cell not retrained yet"
            rows.append({**meta, "cell": cell, "test_accuracy": value, "source": source, "note": note})
        rows += _equal_rows(base, folder, res, epochs, meta, own)
    return pd.DataFrame(rows, columns=["setting", "dataset", "sparsity", "pruning", "preset", "seed", "run", "cell",
                                       "test_accuracy", "source", "note"])


def _equal_rows(base: Path, folder: Path, res: dict, epochs: int, meta: dict, own: int) -> list[dict]:
    """The equal-evaluation cells of one run: from results/evidence/equal/<run>-e<epochs>.json, or the run's own
    stage 1 and SAFS where its LAHC already scored at least as many vectors as the scan (the cpu preset)."""
    path = base / "equal" / f"{folder.name}-e{epochs}.json"
    own_evals = res.get("stage1_search", {}).get("evaluations") or _own_evaluations(folder)
    rows = []
    for cell, own_cell in zip(EQUAL_CELLS, ("stage1", "safs")):
        value, source, note = math.nan, "missing", "not run (tools/equal_search.py)"
        if path.exists() and cell in load_json(path)["cells"]:
            rec = load_json(path)["cells"][cell]
            value, source, note = (math.nan, "equal", rec["error"]) if "error" in rec else \
                (rec["test_accuracy"], "equal", "")
        elif own_evals is not None and own_evals >= len(SEARCH_SPACE) and own == epochs:
            value, source, note = _committed(res, own_cell), "committed", f"own LAHC: {own_evals} evaluations"
        rows.append({**meta, "cell": cell, "test_accuracy": value, "source": source, "note": note})
    return rows


def _own_evaluations(folder: Path) -> int | None:
    path = folder / "stage1.json"
    return load_json(path).get("search", {}).get("evaluations") if path.exists() else None


def wide(cells: pd.DataFrame) -> pd.DataFrame:
    """setting x seed rows, one column per cell (NaN where missing)."""
    return cells.pivot_table(index=["setting", "seed"], columns="cell", values="test_accuracy",
                             aggfunc="first", dropna=False).reindex(columns=[*CELLS, *EQUAL_CELLS])


def describe_differences(d: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Mean, t and BCa intervals, Wilcoxon p, probability of improvement and IQM of paired differences."""
    low, high, method = bootstrap_interval(d, n_resamples=n_resamples, seed=seed)
    t_low, t_high = t_interval(d)
    poi = float(np.mean((d > 0) + 0.5 * (d == 0))) if d.size else math.nan
    return {"n": int(d.size), "mean": float(d.mean()) if d.size else math.nan, "t_low": t_low, "t_high": t_high,
            "boot_low": low, "boot_high": high, "boot_method": method, "p_wilcoxon": wilcoxon_p(d),
            "poi": poi, "iqm": float(sps.trim_mean(d, 0.25)) if d.size else math.nan}


def effects(cells: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Every effect (and the interaction) per setting, paired over the masks that have both cells.

    Columns: setting, effect, words, n, mean, t_low, t_high, boot_low, boot_high, boot_method, p_wilcoxon, poi,
    iqm, seeds (those compared), missing (the setting's seeds left out, because a cell is missing or failed),
    sources (how many of the setting's cells come from each source: retrained finals or the runs' own records).
    """
    table, rows = wide(cells), []
    for setting in dict.fromkeys(cells["setting"]):
        group = table.loc[setting]
        counts = cells[(cells["setting"] == setting) & cells["cell"].isin(CELLS)]["source"].value_counts()
        sources = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "missing")
        diffs = {name: group[a] - group[b] for name, (a, b, _) in EFFECTS.items()}
        diffs[INTERACTION] = diffs["stage2_on_operator"] - diffs["stage2_on_relu"]
        for name, d in diffs.items():
            kept = d.dropna()
            words = EFFECTS[name][2] if name in EFFECTS else "stage 2's effect on the single operator minus on ReLU"
            row = {"setting": setting, "effect": name, "words": words,
                   **describe_differences(np.round(kept.to_numpy(float), 9), n_resamples, seed),
                   "seeds": tuple(int(s) for s in kept.index), "missing": tuple(int(s) for s in d.index[d.isna()]),
                   "sources": sources}
            rows.append(row)
    return pd.DataFrame(rows)


def load_family(path: str | os.PathLike | None = None) -> dict:
    """The declared primary family (results/evidence/family.json)."""
    return load_json(Path(path) if path else evidence_root() / "family.json")


def primary_family(cells: pd.DataFrame, family: dict, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """The family's hypotheses with their Wilcoxon p, Holm-adjusted within the family, and the equivalence test.

    A hypothesis a setting cannot test yet (fewer than 2 masks) stays in the family with p = 1, so the
    correction never shrinks because data are missing. Columns: setting, effect, n, mean, t_low, t_high, p,
    p_holm, reject (at the family's alpha), and for the equivalence effect tost_p and equivalent.
    """
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_paired

    eff = effects(cells, n_resamples).set_index(["setting", "effect"])
    table = wide(cells)
    rows = []
    for setting in family["settings"]:
        for name in family["effects"]:
            r = eff.loc[(setting, name)] if (setting, name) in eff.index else None
            n = int(r["n"]) if r is not None else 0
            rows.append({"setting": setting, "effect": name, "n": n,
                         **{k: (r[k] if r is not None else math.nan) for k in ("mean", "t_low", "t_high")},
                         "p": float(r["p_wilcoxon"]) if n >= 2 and math.isfinite(r["p_wilcoxon"]) else 1.0})
    out = pd.DataFrame(rows)
    reject, p_holm, *_ = multipletests(out["p"], alpha=family["alpha"], method="holm")
    out["p_holm"], out["reject"] = p_holm, reject
    eq = family["equivalence"]
    a, b, _ = EFFECTS[eq["effect"]]
    tost = {}
    for setting in family["settings"]:
        if setting not in table.index.get_level_values("setting"):
            continue
        pair = table.loc[setting][[a, b]].dropna()
        if len(pair) >= 3 and (pair[a] - pair[b]).std() > 0:
            tost[setting] = float(ttost_paired(pair[a].to_numpy(float), pair[b].to_numpy(float),
                                               -eq["margin"], eq["margin"])[0])
    out["tost_p"] = [tost.get(s, math.nan) if e == eq["effect"] else math.nan for s, e in zip(out["setting"],
                                                                                              out["effect"])]
    out["equivalent"] = out["tost_p"] < family["alpha"]
    return out


def format_effects(eff: pd.DataFrame, names=(*PATH, "total", "stage2_on_relu", INTERACTION)) -> str:
    """Markdown: one row per setting, one column per effect, 'mean [t interval]' with n."""
    head = "| setting | n | cells from | " + " | ".join(names) + " |"
    lines = [head, "|---" * (len(names) + 3) + "|"]
    idx = eff.set_index(["setting", "effect"])
    for setting in dict.fromkeys(eff["setting"]):
        cells = []
        for name in names:
            r = idx.loc[(setting, name)]
            cells.append("n/a" if r["n"] < 2 else f"{r['mean']:+.2f} [{r['t_low']:+.2f}, {r['t_high']:+.2f}]")
        n = idx.loc[(setting, "total"), "n"]
        missing = idx.loc[(setting, "total"), "missing"]
        lines.append(f"| {setting} | {n}{f' (missing {len(missing)})' if missing else ''} | "
                     f"{idx.loc[(setting, 'total'), 'sources']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"


def format_family(fam: pd.DataFrame, family: dict) -> str:
    """Markdown of the primary family: one row per hypothesis, Holm-adjusted p and the decision."""
    lines = [f"Primary family: {len(fam)} hypotheses, two-sided Wilcoxon signed-rank, Holm within the family at "
             f"alpha {family['alpha']}; equivalence of `{family['equivalence']['effect']}` within "
             f"+-{family['equivalence']['margin']} point (TOST, paired t).", "",
             "| setting | effect | n | mean [t 95%] | p | p (Holm) | decision | TOST p |", "|---" * 8 + "|"]
    for r in fam.itertuples():
        interval = "n/a" if r.n < 2 else f"{r.mean:+.2f} [{r.t_low:+.2f}, {r.t_high:+.2f}]"
        decision = "too few masks" if r.n < 2 else ("differs from 0" if r.reject else "not shown")
        tost = "" if math.isnan(r.tost_p) else f"{r.tost_p:.3g}" + (" (equivalent)" if r.equivalent else "")
        lines.append(f"| {r.setting} | {r.effect} | {r.n} | {interval} | {r.p:.3g} | {r.p_holm:.3g} | {decision} | "
                     f"{tost} |")
    return "\n".join(lines) + "\n"


def answer(eff: pd.DataFrame, setting: str) -> str:
    """One generated sentence: how SAFS's gain over MP splits into the three steps of `PATH` at `setting`."""
    idx = eff.set_index(["setting", "effect"])
    total = idx.loc[(setting, "total")]
    if total["n"] < 2:
        return f"At {setting}: fewer than 2 masks with every cell; no decomposition yet."
    parts = []
    for name in PATH:
        r = idx.loc[(setting, name)]
        where = "above 0" if r["t_low"] > 0 else "below 0" if r["t_high"] < 0 else "contains 0"
        parts.append(f"{EFFECTS[name][2]} {r['mean']:+.2f} ({where})")
    return (f"At {setting} (n = {int(total['n'])} masks), SAFS - MP = {total['mean']:+.2f} points: "
            + "; ".join(parts) + ".")


README_START, README_END = "<!-- factorial:start -->", "<!-- factorial:end -->"


def _interval(r) -> str:
    return f"{r['mean']:+.2f} [{r['t_low']:+.2f}, {r['t_high']:+.2f}]"


def readme_block(root: str | os.PathLike | None = None, family: dict | None = None) -> str:
    """The README's answer, generated from the committed study: the decomposition per setting at the family's
    budget where every mask has it, else at the runs' own budget (said per row), and the family's result."""
    family = family or load_family(evidence_root(root) / "family.json")
    budget = family["budget_epochs"]
    at_budget = effects(load_cells(budget, root)).set_index(["setting", "effect"])
    own = effects(load_cells(5, root, prefer="committed")).set_index(["setting", "effect"])
    rows, first = [], None
    for setting in family["settings"]:
        n_budget = int(at_budget.loc[(setting, "total"), "n"]) if (setting, "total") in at_budget.index else 0
        use, epochs = (at_budget, budget) if n_budget >= 10 else (own, 5)
        if (setting, "total") not in use.index or use.loc[(setting, "total"), "n"] < 2:
            continue
        r = {name: use.loc[(setting, name)] for name in (*PATH, "total")}
        first = first or (setting, epochs, r)
        rows.append(f"| {setting} | {epochs} | {int(r['total']['n'])} | {_interval(r['total'])} | "
                    + " | ".join(_interval(r[name]) for name in PATH)
                    + f" | {n_budget if epochs != budget else ''} |")
    fam = primary_family(load_cells(budget, root), family)
    shown = fam[fam["reject"]]
    setting, epochs, r = first
    eq = fam[(fam["setting"] == setting) & (fam["effect"] == family["equivalence"]["effect"])].iloc[0]
    search = r["search_with_stage2"]
    search_words = ("rules out a gain beyond" if eq["equivalent"] else "neither shows a gain nor rules out one of")
    lines = [
        f"At the paper's setting ({setting}, {epochs}-epoch finals, n = {int(r['total']['n'])} masks) SAFS beats "
        f"magnitude pruning (MP) by {_interval(r['total'])} points (mean, t 95% interval). Most of it is leaving "
        f"ReLU for one good operator in every layer: {_interval(r['operator'])}. Stage 2 on that operator adds "
        f"{_interval(r['stage2_on_operator'])}; LAHC's per-layer choice on top of it (stage 2 on both) adds "
        f"{_interval(search)}, which {search_words} +-{family['equivalence']['margin']:g} point "
        f"(equivalence test p {eq['tost_p']:.2f}).",
        "",
        f"Of the {len(fam)} hypotheses declared in `results/evidence/family.json`, "
        + (f"{len(shown)} {'survives' if len(shown) == 1 else 'survive'} Holm's correction: " + "; ".join(
            f"{EFFECTS[h.effect][2]} at {h.setting} (Holm p {h.p_holm:.3f})" for h in shown.itertuples()) if len(shown)
           else "none survives Holm's correction") + ". The two layer-wise rows share their 10 masks (one pruned network "
        "per seed, two stage budgets).",
        "",
        "| setting | finals (epochs) | n | SAFS - MP | operator: single - MP | stage 2 on it | per-layer search "
        f"(with stage 2) | {budget}-epoch finals so far (n) |",
        "|---" * 8 + "|", *rows]
    pairs = budget_pairs(root, budget)
    if pairs:
        lines += ["", f"Rows read at 5 epochs use the `sweep` preset's own 5-epoch finals until their {budget}-epoch "
                  "retrains (`tools/retrain_finals.py`) reach 10 masks. The budget changes the answer; the masks "
                  f"retrained so far, SAFS - MP at 5 / {budget} epochs (both retrained by `tools/retrain_finals.py`): "
                  + "; ".join(f"{p['setting']} seed {p['seed']}: {p['short']:+.2f} / {p['long']:+.2f}"
                              for p in pairs) + ". The path's steps at each budget, over the same masks: "
                  "`results/evidence/budget-axis.md`."]
    return "\n".join(lines)


def budget_pairs(root: str | os.PathLike | None = None, budget: int = 30, short: int = 5) -> list[dict]:
    """SAFS - MP per mask at `short` and `budget` epochs, both from retrained finals (masks that have both)."""
    out = []
    a = wide(load_cells(short, root, prefer="finals")[lambda d: d["source"] == "finals"])
    b = wide(load_cells(budget, root, prefer="finals")[lambda d: d["source"] == "finals"])
    for key in a.index.intersection(b.index):
        d_short = a.loc[key, "safs"] - a.loc[key, "magnitude_pruning"]
        d_long = b.loc[key, "safs"] - b.loc[key, "magnitude_pruning"]
        if math.isfinite(d_short) and math.isfinite(d_long):
            out.append({"setting": key[0], "seed": int(key[1]), "short": float(d_short), "long": float(d_long)})
    return out


def budget_axis(root: str | os.PathLike | None = None, budgets: tuple[int, ...] = (5, 30, 100),
                min_masks: int = 2) -> pd.DataFrame:
    """The path's effects per setting at each final budget, over the masks retrained at every budget present for
    that setting (all from `tools/retrain_finals.py`, so one kit and engine; paired across budgets: a change
    between rows is the budget's, not another sample of masks). A budget with fewer than `min_masks` such masks
    for a setting is left out of that setting's rows.

    Columns: setting, epochs, n, seeds, and per effect of (*PATH, "total") its mean and t interval."""
    frames = {e: load_cells(e, root, prefer="finals") for e in budgets}
    frames = {e: c[(c["source"] == "finals") & c["cell"].isin(CELLS)] for e, c in frames.items()}
    complete = {e: wide(c).dropna(subset=list(CELLS)) for e, c in frames.items() if not c.empty}
    rows = []
    for setting in dict.fromkeys(s for w in complete.values() for s in w.index.get_level_values("setting")):
        have = {e: set(w.loc[setting].index) for e, w in complete.items() if setting in w.index.get_level_values(0)}
        usable = [e for e in budgets if len(have.get(e, ())) >= min_masks]
        common = sorted(set.intersection(*(have[e] for e in usable))) if usable else []
        if len(usable) < 2 or len(common) < min_masks:
            continue
        for e in usable:
            w = complete[e].loc[setting].loc[common]
            row = {"setting": setting, "epochs": e, "n": len(common), "seeds": ",".join(map(str, common))}
            for name in (*PATH, "total"):
                a, b = EFFECTS[name][:2]
                d = (w[a] - w[b]).to_numpy(float)
                low, high = t_interval(d)
                row.update({f"{name}": float(d.mean()), f"{name}_low": low, f"{name}_high": high})
            rows.append(row)
    return pd.DataFrame(rows)


def format_budget_axis(axis: pd.DataFrame) -> str:
    if axis.empty:
        return "No setting has the same masks retrained at two budgets yet."
    head = ("| setting | finals (epochs) | masks (seeds) | SAFS - MP | operator: single - MP | stage 2 on it | "
            "per-layer search (with stage 2) |")
    lines = [head, "|---" * 7 + "|"]
    for r in axis.itertuples():
        cells = [f"{getattr(r, n):+.2f} [{getattr(r, n + '_low'):+.2f}, {getattr(r, n + '_high'):+.2f}]"
                 for n in ("total", *PATH)]
        lines.append(f"| {r.setting} | {r.epochs} | {r.n} ({r.seeds}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(path: str | os.PathLike, block: str) -> bool:
    """Replace the text between README_START and README_END in `path` by `block`; True if it changed."""
    path = Path(path)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path}: no {README_START} ... {README_END} markers")
    head, rest = text.split(README_START, 1)
    new = f"{head}{README_START}\n{block}\n{README_END}{rest.split(README_END, 1)[1]}"
    path.write_text(new)
    return new != text


def plot_path(eff: pd.DataFrame, title: str | None = None):
    """The path from MP to SAFS as a waterfall, one panel per setting with at least 2 masks: each step's mean
    (bar from the running total) with its t 95% interval, and SAFS - MP as the last bar."""
    import matplotlib.pyplot as plt

    idx = eff.set_index(["setting", "effect"])
    settings = [s for s in dict.fromkeys(eff["setting"]) if idx.loc[(s, "total"), "n"] >= 2]
    if not settings:
        raise ValueError("no setting has 2 masks with every cell: nothing to plot yet")
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.4), sharey=True, squeeze=False)
    names = ["operator", "stage 2", "per-layer", "total"]
    for ax, setting in zip(axes[0], settings):
        start = 0.0
        for i, name in enumerate((*PATH, "total")):
            r = idx.loc[(setting, name)]
            bottom = 0.0 if name == "total" else start
            color = "0.35" if name == "total" else ("tab:green" if r["mean"] >= 0 else "tab:red")
            ax.bar(i, r["mean"], bottom=bottom, color=color, width=0.6)
            ax.errorbar(i, bottom + r["mean"], yerr=[[r["mean"] - r["t_low"]], [r["t_high"] - r["mean"]]],
                        color="black", capsize=3, lw=1)
            start += 0.0 if name == "total" else r["mean"]
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(4), names, rotation=30)
        ax.set_title(f"{setting}\nn = {int(idx.loc[(setting, 'total'), 'n'])}", fontsize=9)
    axes[0][0].set_ylabel("test accuracy gain over MP (points)")
    fig.suptitle(title or "MP -> SAFS in three steps (mean, t 95% interval over masks)", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[30], help="the final budgets to read (default 30)")
    p.add_argument("--write", action="store_true", help="also write results/evidence/factorial-e<E>.md, "
                   "figures/factorial-e<E>.png and the README's answer (the committed tables, figure and text)")
    args = p.parse_args(argv)
    family = load_family()
    for epochs in args.epochs:
        cells = load_cells(epochs)
        if cells.empty:
            print(f"no 99% evidence runs under {evidence_root() / 'runs'}", file=sys.stderr)
            return 2
        eff = effects(cells)
        text = (f"The factorial at {epochs}-epoch finals (mean [t 95% interval], paired over masks):\n\n"
                + format_effects(eff) + "\n" + "\n".join(answer(eff, s) for s in dict.fromkeys(eff["setting"])))
        if epochs == family["budget_epochs"]:
            text += "\n\n" + format_family(primary_family(cells, family), family)
        print(text + "\n")
        if args.write:
            from .plots import save_figure

            path = evidence_root() / f"factorial-e{epochs}.md"
            path.write_text(f"<!-- python -m safs_lite.study.factorial --epochs {epochs} --write -->\n" + text + "\n")
            try:
                save_figure(plot_path(eff, f"MP -> SAFS at {epochs}-epoch finals (mean, t 95% interval)"),
                            figures_dir() / f"factorial-e{epochs}.png")
            except ValueError as err:
                print(f"figure not written: {err}", file=sys.stderr)
    axis = format_budget_axis(budget_axis())
    print("The budget axis: the same masks retrained at each final budget (mean [t 95% interval]):\n\n" + axis)
    if args.write:
        from ..paths import REPO_ROOT

        (evidence_root() / "budget-axis.md").write_text(
            "<!-- python -m safs_lite.study.factorial --write -->\nThe budget axis: the same masks retrained at "
            "each final budget by tools/retrain_finals.py (mean [t 95% interval], paired over masks):\n\n"
            + axis + "\n")

        update_readme(REPO_ROOT / "README.md", readme_block())
    return 0


if __name__ == "__main__":
    sys.exit(main())
