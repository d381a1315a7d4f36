"""Does stage 2's HPO pick hyperparameters that hold at the final budget? Every trial of a run's study, retrained.

Stage 2 scores each Optuna trial after a short budget (the `sweep` preset: 3 epochs on 10,000 images; `cpu`: up
to 5 full epochs, successive halving stopping most trials after 1 or 3) and retrains the best one for the final
budget. A trial that wins a short race (a large, aggressive learning rate) need not win a 30-epoch retrain. This
tool measures that on committed evidence runs:

1. rebuilds the run's stage-2 study from its committed pruned network, operators and seed (the same sampler
   seeds, so it proposes the trials the run saw; whether its best trial's hyperparameters equal the committed
   ones is recorded as `reproduced`);
2. retrains every trial's hyperparameters for `--epochs` epochs (30: the paper's setting's final budget), on
   the compact engine, one thread, recording validation and test accuracy;
3. writes `results/evidence/hpo_transfer/<run>-<stage>-e<E>.json` after every trial (a rerun resumes).

`summarise` reads the files: per run, Spearman's rho between the trials' HPO scores (completed trials) and their
final validation accuracy, the regret of the HPO's pick (best final validation among the trials minus the pick's)
and a rule that transfers by construction, "re-rank the top k trials at the final budget": of the k trials the
study got furthest with (successive halving's rung, then the score there), the one with the best final-budget
validation accuracy (its test accuracy beside the HPO pick's, paired over runs). Decisions use validation only; test accuracy is recorded for the report.

    SAFS_DATA=../shared/data python tools/hpo_transfer.py --runs safs-lenet5-mnist-0.99-global-sweep-s{0,1,2} \\
        [--stage safs] [--epochs 30]
    python tools/hpo_transfer.py --summary          # prints the table (results/evidence/hpo_transfer.md with --write)
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import torch
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrain_finals import CELLS, ENGINE, cell_plan, config_of, retrain_cell  # noqa: E402

from safs_lite.data.builtin import load_data  # noqa: E402
from safs_lite.paths import results_dir, runs_dir  # noqa: E402
from safs_lite.run.config import Preset  # noqa: E402
from safs_lite.run.folders import load_json, save_json  # noqa: E402
from safs_lite.run.pipeline import stage2_study  # noqa: E402
from safs_lite.study.shipped import load_network  # noqa: E402
from safs_lite.version import KIT_VERSION  # noqa: E402

STAGES = {"safs": "safs", "stage2": "stage2", "uniform_safs": "uniform_safs"}  # the cells tuned by a stage-2 study
TOP_K = 3


def out_dir() -> Path:
    return results_dir() / "evidence" / "hpo_transfer"


def rebuild_study(run: Path, stage: str, data) -> tuple[optuna.Study, dict]:
    """The run's stage-2 study for `stage`, recomputed into runs/hpo_transfer/<run>/<stage>_hpo (resumable)."""
    res = load_json(run / "results.json")
    cfg = res["config"]
    budgets = Preset(**cfg["budgets"])
    ops, _, _ = cell_plan(run, stage)
    base = config_of({**cfg["train_defaults"], "seed": cfg["seed"], "engine": ENGINE})
    folder = runs_dir() / "hpo_transfer" / run.name / f"{stage}_hpo"
    folder.mkdir(parents=True, exist_ok=True)
    study = stage2_study(load_network(run / "pruned.pt"), data, ops, budgets, base, cfg["seed"], folder,
                         name=stage, progress=False)
    committed = load_json(run / CELLS[stage][0])["hpo"]["best_params"]
    return study, {"committed_best": committed, "reproduced": study.best_trial.params == committed}


def retrain_trial(run: Path, stage: str, params: dict, epochs: int, data) -> dict:
    """The stage's final retrain (tools/retrain_finals.py's cell) with a trial's hyperparameters."""
    keys = ("optimizer", "lr", "momentum", "weight_decay", "scheduler")
    return retrain_cell(run, stage, epochs, data, params={k: params[k] for k in keys})


def measure(run: Path, stage: str, epochs: int) -> Path:
    res = load_json(run / "results.json")
    data = load_data(res["config"]["dataset"], seed=res["config"]["seed"], quiet=True)
    if data.signature != res["data"]["signature"]:
        raise SystemExit(f"{run.name}: made on data {res['data']['signature']}, found {data.signature} "
                         "(point SAFS_DATA at the run's data)")
    path = out_dir() / f"{run.name}-{stage}-e{epochs}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    study, check = rebuild_study(run, stage, data)
    rec = load_json(path) if path.exists() else {"run": run.name, "stage": stage, "epochs": epochs,
                                                 "kit": KIT_VERSION, "engine": ENGINE, "data": data.signature,
                                                 "trials": {}}
    rec.update(check, trial_budget={k: res["config"]["budgets"][k] for k in ("trial_epochs", "trial_subset")},
               best_trial=study.best_trial.number, study_trials=len(study.trials))
    for t in study.trials:
        key = str(t.number)
        if key in rec["trials"] and "error" not in rec["trials"][key].get("final", {}):
            continue
        entry = {"params": t.params, "state": t.state.name, "hpo_score": t.value,
                 "last_epoch": max(t.intermediate_values, default=0),
                 "last_intermediate": t.intermediate_values.get(max(t.intermediate_values, default=0)),
                 "diverged": t.user_attrs.get("diverged")}
        try:
            entry["final"] = retrain_trial(run, stage, t.params, epochs, data)
        except Exception as err:  # noqa: BLE001 - recorded, the plan goes on
            entry["final"] = {"error": f"{type(err).__name__}: {err}"}
        rec["trials"][key] = entry
        save_json(path, rec)
        f = entry["final"]
        print(f"{run.name} {stage} trial {key} ({entry['state']}, HPO score {entry['hpo_score']}): " +
              (f"{epochs}-epoch val {f['val_accuracy']:.2f}, {f['cpu_seconds']:.0f} CPU s" if "error" not in f
               else f["error"]), flush=True)
    return path


def _rank_key(trial: dict) -> tuple:
    """How far the study got with a trial: the epoch it reached (successive halving's rung), then its score there."""
    score = trial["hpo_score"] if trial["hpo_score"] is not None else -math.inf
    return (trial.get("last_epoch") or 0, score)


def _study_size(rec: dict) -> int:
    """The number of trials the study ran: recorded by `measure`, else the run's preset's, else the file's."""
    if "study_trials" in rec:
        return rec["study_trials"]
    run = results_dir() / "evidence" / "runs" / rec["run"] / "results.json"
    return load_json(run)["config"]["budgets"]["hpo_trials"] if run.exists() else len(rec["trials"])


def summarise(folder: Path | None = None, top_k: int = TOP_K) -> list[dict]:
    """One row per file: rho (HPO score vs final val over completed trials, when at least 3 completed), the regret
    of the HPO's pick and the top-k re-rank's test accuracy against the HPO pick's. The re-rank takes the k trials
    the study got furthest with (the rung reached, then the score there: completed trials first) and keeps the
    one with the best final-budget validation accuracy."""
    rows = []
    for path in sorted((folder or out_dir()).glob("*.json")):
        rec = load_json(path)
        trials = {int(k): v for k, v in rec["trials"].items() if "error" not in v.get("final", {})}
        done = {k: v for k, v in trials.items() if v["state"] == "COMPLETE" and v["hpo_score"] is not None}
        if rec["best_trial"] not in trials or len(trials) < _study_size(rec):
            rows.append({"file": path.name, "note": f"{len(trials)} trials retrained, {len(done)} completed"})
            continue
        rho = math.nan
        if len(done) >= 3:
            rho = sps.spearmanr([v["hpo_score"] for v in done.values()],
                                [v["final"]["val_accuracy"] for v in done.values()]).statistic
        pick = trials[rec["best_trial"]]["final"]
        top = sorted(trials, key=lambda k: _rank_key(trials[k]), reverse=True)[:top_k]
        rerank = trials[max(top, key=lambda k: trials[k]["final"]["val_accuracy"])]["final"]
        best_val = max(v["final"]["val_accuracy"] for v in trials.values())
        rows.append({"file": path.name, "run": rec["run"], "stage": rec["stage"], "epochs": rec["epochs"],
                     "trials": len(trials), "completed": len(done), "reproduced": rec["reproduced"], "rho": rho,
                     "regret_val": best_val - pick["val_accuracy"], "pick_test": pick["test_accuracy"],
                     "rerank_test": rerank["test_accuracy"], "note": ""})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"| run | stage | trials (completed) | HPO pick reproduced | Spearman rho, HPO score vs {rows[0].get('epochs', 'E') if rows else 'E'}-epoch val | "
             "regret of the pick (val) | test: HPO pick | test: top-3 re-ranked |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["note"]:
            lines.append(f"| {r['file']} | {r['note']} | | | | | | |")
            continue
        lines.append(f"| {r['run']} | {r['stage']} | {r['trials']} ({r['completed']}) | {r['reproduced']} | "
                     f"{'n/a' if math.isnan(r['rho']) else format(r['rho'], '+.2f')} | {r['regret_val']:.2f} | {r['pick_test']:.2f} | {r['rerank_test']:.2f} |")
    full = [r for r in rows if not r["note"]]
    if len(full) >= 2:
        d = np.array([r["rerank_test"] - r["pick_test"] for r in full])
        lines += ["", f"Top-3 re-rank minus the HPO pick, test accuracy, paired over {len(d)} runs: mean {d.mean():+.2f}"
                  f" (t 95% interval {sps.t.interval(0.95, len(d) - 1, d.mean(), sps.sem(d))[0]:+.2f} to "
                  f"{sps.t.interval(0.95, len(d) - 1, d.mean(), sps.sem(d))[1]:+.2f})" if d.std() > 0 else
                  f"Top-3 re-rank minus the HPO pick: {d.mean():+.2f} on every run"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="*", default=[], help="evidence run folder names under results/evidence/runs")
    p.add_argument("--stage", default="safs", choices=list(STAGES), help="whose study (default safs)")
    p.add_argument("--epochs", type=int, default=30, help="the final budget to retrain at (default 30)")
    p.add_argument("--summary", action="store_true", help="print the table of what is measured")
    p.add_argument("--write", action="store_true", help="with --summary: write results/evidence/hpo_transfer.md")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs {args.epochs}: must be >= 1")
    torch.set_num_threads(1)
    root = results_dir() / "evidence" / "runs"
    for name in args.runs:
        run = root / name
        if not (run / "results.json").exists():
            p.error(f"--runs {name}: no committed run of that name under {root}")
        if not (run / CELLS[args.stage][0]).exists():
            p.error(f"--runs {name}: the run has no {args.stage} stage")
        measure(run, args.stage, args.epochs)
    if args.summary or not args.runs:
        text = table(summarise())
        print(text)
        if args.write:
            (results_dir() / "evidence" / "hpo_transfer.md").write_text(
                "<!-- python tools/hpo_transfer.py --summary --write -->\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
