"""A Dask cluster on SLURM for `--scheduler` (dask-jobqueue): run it on the login node and leave it running.

    pip install dask-jobqueue
    python docs/slurm_cluster.py --jobs 8 --partition gpu --gpus 1 --hours 12 --dry-run   # print the job script
    python docs/slurm_cluster.py --jobs 8 --partition gpu --gpus 1 --hours 12             # submit, print the address
    python -m safs_lite sweep --preset paper --device cuda --scheduler tcp://LOGIN-NODE:8786   # in another shell

Each SLURM job is one Dask worker: one process, one thread, one GPU (or `--cores` CPU cores), so
`safs_lite.study.cluster` runs one SAFS run per job at a time. The workers read and write the same data
and runs folders as the command that submits the runs: put them on the cluster's shared file
system (SAFS_DATA, SAFS_RUNS, or --data / --runs). Adapt --partition, --account and the
environment lines to your site. This script was checked with --dry-run (the job script it
prints); it has not run on a SLURM cluster.
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs = Dask workers")
    p.add_argument("--partition", default="gpu")
    p.add_argument("--account", default=None)
    p.add_argument("--gpus", type=int, default=1, help="GPUs per job (0: a CPU job)")
    p.add_argument("--cores", type=int, default=4, help="CPU cores per job (data batches, evaluation)")
    p.add_argument("--memory", default="32GB")
    p.add_argument("--hours", type=int, default=12, help="wall time of each job")
    p.add_argument("--port", type=int, default=8786, help="the scheduler's port on this node")
    p.add_argument("--prologue", nargs="*", default=[], metavar="LINE",
                   help="shell lines each job runs first, e.g. 'module load cuda' (the jobs run this Python)")
    p.add_argument("--dry-run", action="store_true", help="print the job script and exit")
    args = p.parse_args(argv)

    from dask_jobqueue import SLURMCluster

    extra = [f"--gres=gpu:{args.gpus}"] if args.gpus else []
    cluster = SLURMCluster(
        queue=args.partition, account=args.account,
        cores=1, processes=1,                 # one single-threaded Dask worker per job: one run at a time
        job_cpu=args.cores, memory=args.memory,
        walltime=f"{args.hours:02d}:00:00",
        job_extra_directives=extra,
        job_script_prologue=[*args.prologue, "export OMP_NUM_THREADS=1"],
        scheduler_options={"port": args.port},
    )
    if args.dry_run:
        print(cluster.job_script())
        cluster.close()
        return 0
    cluster.scale(jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}  ({args.jobs} jobs submitted; Ctrl-C stops them)", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
