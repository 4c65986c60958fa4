"""A study at the speed of the math: the real comparison study (LSTM, 7 intervals x SEEDS seeds) run
as a user runs it (`lstm-tweets-train -m experiment=real_comparison model=lstm` with WORKERS jobs at
a time, as `make comparison WORKERS=n` runs them), against its
floor: the same networks on the same tensors for the epochs each run actually trained, in a plain
PyTorch loop, serially, in one process with every core.

    python benchmarks/bench_study.py [--seeds 5] [--workers <cores>] [--rounds 1] [--out outputs/bench/study.json]

The floor does the math each run does: every training step, a validation pass after each epoch
(what picks the epoch) and one test pass; nothing else (no imports, data preparation, metrics,
checkpoints or files). Its data are prepared before either is timed, which also leaves the label
and embedding caches warm for the study, as they are for a user's second study on the same data.

With --rounds n the study and the floor alternate n times: this VM's speed drifts by 10-20 % over
minutes, so one pair can land either side of a threshold. study.json then gives every round and,
as its headline `ratio`, the median of the paired ratios (the walls are the medians too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

INTERVALS = (5, 10, 15, 20, 30, 40, 50)
EXPERIMENT = "real_comparison"


def study_overrides(interval: int, seed: int) -> list[str]:
    return [f"experiment={EXPERIMENT}", "model=lstm", f"data.interval={interval}", f"seed={seed}"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from lstm_tweets.train import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return hydra_compose("train", overrides=overrides, return_hydra_config=False)


def prepared_run(interval: int, seed: int) -> dict:
    """One run's datamodule and network exactly as the training app builds them (same seed, same
    initial weights, same embedding matrix), ready for the plain loop."""
    import pytorch_lightning as pl

    from lstm_tweets.train import build, build_model

    cfg = compose(study_overrides(interval, seed))
    pl.seed_everything(seed, workers=True, verbose=False)
    datamodule = build(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    return {"datamodule": datamodule, "module": build_model(cfg, datamodule), "seed": seed}


def plain_loop(run: dict, epochs: int) -> float:
    """Train `epochs` epochs (validation after each) and test once; returns the wall seconds."""
    import pytorch_lightning as pl

    from lstm_tweets.model import build_torch_optim

    datamodule, net = run["datamodule"], run["module"].net
    weights = run["module"].class_weights
    pl.seed_everything(run["seed"], workers=True, verbose=False)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = build_torch_optim(run["module"].hparams.optimizer, params=params)
    scheduler = build_torch_optim(run["module"].hparams.scheduler, optimizer=optimizer)
    train, val, test = (
        datamodule.train_dataloader(),
        datamodule.val_dataloader(),
        datamodule.test_dataloader(),
    )

    def evaluate(loader) -> float:
        net.eval()
        correct = 0
        with torch.no_grad():
            for batch in loader:
                logits = net(batch["ids"], batch["lengths"], batch.get("counts"))
                correct += int((logits.argmax(1) == batch["label"]).sum())
        return correct

    started = time.perf_counter()
    for epoch in range(epochs):
        train.batch_sampler.set_epoch(epoch)
        net.train()
        for batch in train:
            logits = net(batch["ids"], batch["lengths"], batch.get("counts"))
            loss = F.cross_entropy(logits, batch["label"], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        evaluate(val)
    evaluate(test)
    return time.perf_counter() - started


def parallel_floor_worker(keys, epochs, threads, barrier, results) -> None:
    torch.set_num_threads(threads)
    prepared = [(prepared_run(*key), n) for key, n in zip(keys, epochs, strict=True)]
    barrier.wait()  # every worker has its data: start the clocks together
    started = time.perf_counter()
    for run, n in prepared:
        plain_loop(run, n)
    results.put(time.perf_counter() - started)


def parallel_floor(keys: list, epochs: list[int], workers: int) -> float:
    """The plain loop split over `workers` processes of cores/workers threads each: what a study
    with no framework cost at all could reach with process parallelism on this machine (the
    longest worker's wall time)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    shares = [(keys[i::workers], epochs[i::workers]) for i in range(workers)]
    procs = [
        context.Process(
            target=parallel_floor_worker,
            args=(k, e, max(1, cores() // workers), barrier, results),
        )
        for k, e in shares
    ]
    for proc in procs:
        proc.start()
    times = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return max(times)


def run_study(seeds: int, workers: int, sweep_dir: Path) -> tuple[float, list[dict]]:
    """The multirun with the project's parallel knob (Makefile PARALLEL: joblib jobs, cores/N threads)."""
    train = Path(sys.executable).parent / "lstm-tweets-train"
    threads = max(1, cores() // workers)
    command = [
        str(train),
        "-m",
        f"experiment={EXPERIMENT}",
        "model=lstm",
        f"data.interval={','.join(map(str, INTERVALS))}",
        f"seed={','.join(str(s) for s in range(1, seeds + 1))}",
        "callbacks.rich_progress_bar=null",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    if workers > 1:
        command += [
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={workers}",
            f"threads={threads}",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print("study:", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    return wall, runs


def cores() -> int:
    from lstm_tweets.resources import cores as affinity_cores

    return affinity_cores()


def serial_floor(runs: list[dict], prepared: dict) -> tuple[float, list[int]]:
    """The plain loop over every run of the study, one after another, with all cores."""
    torch.set_num_threads(cores())
    floor, epochs = 0.0, []
    for run in runs:
        trained = int(run["epochs_trained"])
        epochs.append(trained)
        floor += plain_loop(prepared[(int(run["interval"]), int(run["seed"]))], trained)
    return floor, epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="default: the machine's cores")
    parser.add_argument(
        "--rounds", type=int, default=1, help="study and floor alternated this many times"
    )
    parser.add_argument("--out", default="outputs/bench/study.json")
    parser.add_argument(
        "--study-only", action="store_true", help="time the study alone (no floors, no ratio)"
    )
    args = parser.parse_args()
    workers = args.workers or cores()
    root = Path(os.environ.get("LSTM_TWEETS_ROOT", "."))
    runs_root = root / "outputs" / "bench" / "study_runs"

    # Data first (untimed): the floor's tensors, and warm caches for the study.
    torch.set_num_threads(cores())
    prepared = {
        (interval, seed): prepared_run(interval, seed)
        for interval in INTERVALS
        for seed in range(1, args.seeds + 1)
    }
    rounds, epochs = [], []
    for _ in range(args.rounds):
        sweep_dir = runs_root / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        load_before = os.getloadavg()[0]
        study_wall, runs = run_study(args.seeds, workers, sweep_dir)
        if len(runs) != len(prepared):
            raise SystemExit(
                f"the study finished {len(runs)} of {len(prepared)} runs ({sweep_dir})"
            )
        this = {"study_wall_s": round(study_wall, 1)}
        if not args.study_only:
            floor, epochs = serial_floor(runs, prepared)
            this |= {"plain_loop_wall_s": round(floor, 1), "ratio": round(study_wall / floor, 3)}
        rounds.append(
            this | {"load_average_before_study": round(load_before, 2), "sweep_dir": str(sweep_dir)}
        )
        print(json.dumps(rounds[-1]), flush=True)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 3)

    if args.study_only:
        figures = {
            "runs": len(runs),
            "study_wall_s": median("study_wall_s"),
            "rounds": rounds,
            "settings": {"seeds": args.seeds, "workers": workers},
        }
        write(figures, args.out)
        return
    keys = [(int(run["interval"]), int(run["seed"])) for run in runs]
    floor = median("plain_loop_wall_s")
    best_parallel = parallel_floor(keys, epochs, workers) if workers > 1 else floor
    figures = {
        "runs": len(runs),
        "study_wall_s": median("study_wall_s"),
        "plain_loop_wall_s": floor,
        # One round: its ratio; several: the median of the paired (same round) ratios.
        "ratio": median("ratio"),
        "rounds": rounds,
        # The same plain loop in `workers` processes at once (measured once, after the rounds):
        # the best a study using process parallelism could do here; its ratio to the (median)
        # floor is how well the cores scale.
        "parallel_plain_loop_wall_s": round(best_parallel, 1),
        "parallel_plain_loop_ratio": round(best_parallel / floor, 3),
        "settings": {
            "experiment": EXPERIMENT,
            "model": "lstm",
            "intervals": list(INTERVALS),
            "seeds": args.seeds,
            "rounds": args.rounds,
            "epochs_per_run": sorted(set(epochs)),
            "train_tweets_per_run": sorted(
                {len(p["datamodule"].split.train) for p in prepared.values()}
            ),
            "workers": workers,
            "torch_threads_per_worker": max(1, cores() // workers),
            "floor_torch_threads": cores(),
            "cores": cores(),
            "machine": f"{platform.machine()}, {cores()} cores, torch {torch.__version__} CPU",
        },
    }
    write(figures, args.out)


def write(figures: dict, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
