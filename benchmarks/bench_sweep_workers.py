"""Sweep throughput at WORKERS=1 and WORKERS=2 on this machine: the same trials (a 6-point grid,
the default model, a few epochs on the synthetic sample), run as `make sweep` runs its workers
(N processes on one SQLite study, cores/N torch threads each). Writes outputs/bench/sweep_workers.json.

    python benchmarks/bench_sweep_workers.py [--trials 6] [--epochs 3] [--rounds 1] [--out F]

On a shared VM one measurement moves by 10-20 %: alternate W=1 and W=2 for a few rounds. `ratio`
is the best W=1 time over the best W=2 time (noise only adds time); docs/benchmarks.md also shows
each round's paired ratio and the ratio of the medians. The load average before each measurement
is recorded (a round's own earlier runs count in it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = Path(sys.executable).with_name("lstm-tweets-train")
OUT = ROOT / "outputs" / "bench" / "sweep_workers.json"


def cores() -> int:
    return len(os.sched_getaffinity(0))


def command(folder: Path, cache: Path, worker: int, trials: int, epochs: int, threads: int):
    return [
        str(TRAIN),
        "-m",
        "hparams_search=optuna",
        "hydra/sweeper/sampler=grid",  # the same trials in every measurement
        f"hydra.sweeper.sampler.seed={worker}",
        f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.params=null",
        "+hydra.sweeper.params={model.dropout:'choice(0.2,0.5)',model.lr:'choice(0.0003,0.001,0.003)'}",
        f"trainer.max_epochs={epochs}",
        "callbacks.rich_progress_bar=null",
        f"threads={threads}",
        f"paths.log_dir={folder}",
        f"paths.cache_dir={cache}",
        f"hydra.sweep.dir={folder}/worker{worker}",
    ]


def sweep(workers: int, cache: Path, trials: int, epochs: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-sweep-w{workers}-"))
    threads = max(1, cores() // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    procs = []
    for worker in range(1, workers + 1):
        log = open(folder / f"worker{worker}.log", "wb")
        procs.append(
            subprocess.Popen(
                command(folder, cache, worker, trials, epochs, threads),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        )
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a worker failed; see {folder}")
    import optuna

    study = optuna.load_study(
        study_name="lstm_tweets_sweep", storage=f"sqlite:///{folder / 'optuna.db'}"
    )
    done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "trials": done,
        "seconds": round(seconds, 1),
        "trials_per_hour": round(done / seconds * 3600, 1),
        "load_before": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="alternate W=1 and W=2 this often")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="bench-sweep-cache-"))
    sweep(1, cache, 1, 1)  # builds the sample, labels and embedding once, outside the timings
    runs = []
    for _ in range(args.rounds):
        for workers in (1, 2):
            runs.append(sweep(workers, cache, args.trials, args.epochs))
            print(runs[-1], flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    best = {w: min(r["seconds"] for r in runs if r["workers"] == w) for w in (1, 2)}
    result = {
        "cores": cores(),
        "trials": args.trials,
        "epochs": args.epochs,
        "runs": runs,
        "seconds_1": best[1],
        "seconds_2": best[2],
        "trials_per_hour_1": round(args.trials / best[1] * 3600, 1),
        "trials_per_hour_2": round(args.trials / best[2] * 3600, 1),
        "ratio": round(best[1] / best[2], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
