"""The crash-safe Optuna sweep (`hparams_search=optuna`, lstm_tweets/sweeper.py), run for real:
Hydra multirun subprocesses on a real SQLite file (and a real PostgreSQL server when installed),
killed with SIGKILL, resumed, shared by two workers, and pointed at storages that fail."""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

TRAIN = Path(sys.executable).with_name("lstm-tweets-train")
STUDY = "lstm_tweets_sweep"  # lstm_tweets_${study}, study=sweep in conf/hparams_search/optuna.yaml

# A sweep of trials that each take a couple of seconds: tiny model, a few batches, one epoch.
TINY = [
    "-m",
    "hparams_search=optuna",
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_val_batches=1",
    "data.batch_size=16",
    "embedding=random",
    "embedding.dim=8",
    "model.hidden_dim=8",
    "callbacks.rich_progress_bar=null",
    "hydra/sweeper/sampler=grid",
]


def search_space(**params: str) -> list[str]:
    """Overrides that REPLACE the config's search space (assigning a dict would merge into it)."""
    entries = ",".join(f"{name}:'{spec}'" for name, spec in params.items())
    return ["hydra.sweeper.params=null", f"+hydra.sweeper.params={{{entries}}}"]


class Sweeps:
    """Starts sweep subprocesses (each in its own session, so a kill takes its children too)
    and kills whatever is still running at teardown."""

    def __init__(self, root: Path, cache_dir: Path):
        self.root, self.cache_dir = root, cache_dir
        self.procs: list[subprocess.Popen] = []

    def command(self, sweep_dir: str, *overrides: str, base: list[str] = TINY) -> list[str]:
        return [
            str(TRAIN),
            *base,
            f"paths.log_dir={self.root}",
            f"paths.cache_dir={self.cache_dir}",
            f"hydra.sweep.dir={self.root / sweep_dir}",
            *overrides,
        ]

    def start(
        self, sweep_dir: str, *overrides: str, base: list[str] = TINY, env: dict | None = None
    ) -> subprocess.Popen:
        log = open(self.root / f"{sweep_dir}.log", "wb")  # a file, not a pipe: no pipe can fill up
        proc = subprocess.Popen(
            self.command(sweep_dir, *overrides, base=base),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
        proc.log_path = self.root / f"{sweep_dir}.log"
        log.close()
        self.procs.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            pytest.fail(f"the sweep did not finish within {timeout}s:\n{self.output(proc)[-4000:]}")
        return code, self.output(proc)

    def run(
        self, sweep_dir: str, *overrides: str, timeout: float = 120, **start
    ) -> tuple[int, str]:
        return self.wait(self.start(sweep_dir, *overrides, **start), timeout)

    @staticmethod
    def output(proc) -> str:
        return proc.log_path.read_text(errors="replace")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.procs:
            self.kill(proc)


@pytest.fixture(scope="module")
def warm_cache(cache_dir):
    """The synthetic sample and the interval-5 labels, built once before workers race for them
    (concurrent first builds of one cache entry are not what these tests are about)."""
    from hydra import compose, initialize_config_dir

    from lstm_tweets.train import build

    conf = Path(__file__).resolve().parents[1] / "lstm_tweets" / "conf"
    with initialize_config_dir(config_dir=str(conf)):
        cfg = compose("train", overrides=[f"paths.cache_dir={cache_dir}", "embedding=random"])
    build(cfg.data, _convert_="all").prepare_data()  # data.interval=5: the sweeps below keep it
    return cache_dir


@pytest.fixture
def sweeps(tmp_path, warm_cache):
    runner = Sweeps(tmp_path, warm_cache)
    yield runner
    runner.close()


def sqlite_url(root: Path) -> str:
    return f"sqlite:///{root / 'optuna.db'}"  # the config's default: ${paths.log_dir}/optuna.db


def trial_states(db: Path) -> dict[int, str]:
    """{number: state} read straight from the SQLite file, read-only, while a sweep writes it."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return dict(con.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return {}


def complete_params(study: optuna.Study) -> list[tuple]:
    return [
        tuple(sorted(t.params.items())) for t in study.get_trials(states=(TrialState.COMPLETE,))
    ]


def job_dirs_with_metrics(root: Path) -> list[Path]:
    return sorted(root.rglob("metrics.json"))


# ---- 1. kill -9 in the middle of a trial, then resume ----------------------------------------
def test_killed_sweep_resumes_to_exactly_n_complete_trials(sweeps, tmp_path):
    heartbeat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    space = search_space(**{"data.interval": "choice(5,10,15)"})
    overrides = ["hydra.sweeper.n_trials=3", *space, *heartbeat]
    db = tmp_path / "optuna.db"

    first = sweeps.start("sw1", *overrides)
    deadline = time.monotonic() + 120
    while True:  # until trial 0 is COMPLETE and trial 1 is training (Hydra made its job folder)
        states = trial_states(db)
        training = states.get(1) == "RUNNING" and (tmp_path / "sw1" / "1").is_dir()
        if states.get(0) == "COMPLETE" and training:
            break
        if first.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"never saw trial 0 complete and trial 1 training: {states}\n{sweeps.output(first)[-4000:]}"
            )
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    before = {t.number: t for t in study.get_trials()}
    assert [before[n].state for n in sorted(before)] == [TrialState.COMPLETE, TrialState.RUNNING], (
        before
    )
    done_params = before[0].params
    assert not (tmp_path / "sw1" / "optimization_results.yaml").exists()

    time.sleep(3)  # past the 2 s grace period (SQLite stamps heartbeats to the second)
    code, out = sweeps.run("sw2", *overrides)
    assert code == 0, out[-4000:]
    assert "Marked 1 stale trial(s) of a crashed run as failed: [1]" in out

    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    after = {t.number: t for t in study.get_trials()}
    complete = complete_params(study)
    assert len(complete) == 3, after
    assert len(set(complete)) == 3, f"a parameter set ran twice: {complete}"
    assert {dict(p)["data.interval"] for p in complete} == {5, 10, 15}
    assert after[1].state == TrialState.FAIL  # the killed trial: failed, not left RUNNING
    assert after[0].state == TrialState.COMPLETE and after[0].params == done_params  # not redone...
    assert complete.count(tuple(sorted(done_params.items()))) == 1  # ...nor repeated later
    assert not study.get_trials(states=(TrialState.RUNNING,))
    results = yaml.safe_load((tmp_path / "sw2" / "optimization_results.yaml").read_text())
    assert results["n_complete"] == 3 and results["n_failed"] == 1


# ---- 1b. a two-objective study (experiment=pareto_lift_vs_time), killed and resumed ----------
PARETO = [a for a in TINY if a != "hparams_search=optuna"] + ["experiment=pareto_lift_vs_time"]
PARETO_STUDY = "lstm_tweets_pareto_lift_vs_time"


def kill_when_second_trial_trains(sweeps, proc, db: Path, sweep_dir: Path) -> None:
    """SIGKILLs the sweep (and its children) once trial 0 is COMPLETE and trial 1 is training."""
    deadline = time.monotonic() + 120
    while True:
        states = trial_states(db)
        if (
            states.get(0) == "COMPLETE"
            and states.get(1) == "RUNNING"
            and (sweep_dir / "1").is_dir()
        ):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"never saw trial 0 complete and trial 1 training: {states}\n{sweeps.output(proc)[-4000:]}"
            )
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_multi_objective_sweep_resumes_and_writes_the_pareto_front(sweeps, tmp_path):
    space = search_space(**{"model.dropout": "choice(0.1,0.2,0.3)"})
    overrides = [
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=2",
        *space,
    ]
    strict = {"HYDRA_DEPRECATION_WARNINGS_AS_ERRORS": "1"}  # any deprecated Hydra call fails
    db = tmp_path / "optuna.db"
    first = sweeps.start("mo1", *overrides, base=PARETO, env=strict)
    kill_when_second_trial_trains(sweeps, first, db, tmp_path / "mo1")
    study = optuna.load_study(study_name=PARETO_STUDY, storage=sqlite_url(tmp_path))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = study.trials[0]
    assert done.state == TrialState.COMPLETE and len(done.values) == 2

    time.sleep(3)  # past the 2 s grace period
    code, out = sweeps.run("mo2", *overrides, base=PARETO, env=strict)
    assert code == 0, out[-4000:]
    assert "Marked 1 stale trial(s) of a crashed run as failed: [1]" in out

    study = optuna.load_study(study_name=PARETO_STUDY, storage=sqlite_url(tmp_path))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert sorted(t.params["model.dropout"] for t in complete) == [0.1, 0.2, 0.3]  # no repeat
    assert study.trials[0].values == done.values  # the trial done before the kill stands
    assert study.trials[1].state == TrialState.FAIL
    for trial in complete:
        lift, seconds = trial.values
        assert -1 < lift < 1 and 0 < seconds < 120

    results = yaml.safe_load((tmp_path / "mo2" / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna" and "best_value" not in results
    assert results["objectives"] == ["val/acc_lift", "train/wall_time_s"]
    assert results["directions"] == ["maximize", "minimize"]
    front = {tuple(s["values"]) for s in results["solutions"]}
    assert front == {tuple(t.values) for t in study.best_trials} and front
    assert all(set(s) == {"params", "values"} for s in results["solutions"])
    assert (tmp_path / "mo2" / "optuna" / "pareto_front.png").stat().st_size > 10_000
    metrics = json.loads(next((tmp_path / "mo2").rglob("metrics.json")).read_text())
    assert metrics["optimized_metric"] == ["val/acc_lift", "train/wall_time_s"]
    assert metrics["optimized_value"][1] == metrics["fit_wall_s"]


# ---- 2. two workers on one storage ------------------------------------------------------------
def test_two_workers_share_the_total(sweeps, tmp_path):
    space = search_space(**{"model.dropout": "choice(0.1,0.2,0.3,0.5)"})
    # with a pruner, both workers' trials report to the shared study (4 < its 5 startup trials:
    # none is pruned)
    overrides = ["hydra.sweeper.n_trials=4", "hydra/sweeper/pruner=median", *space]
    # seeded apart, as `make sweep WORKERS=2` seeds them: Optuna shuffles its grid by the seed
    workers = [
        sweeps.start(f"worker{i}", *overrides, f"hydra.sweeper.sampler.seed={i}") for i in (1, 2)
    ]
    results = [sweeps.wait(w, timeout=150) for w in workers]
    for code, out in results:
        assert code == 0, out[-4000:]

    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    complete = complete_params(study)
    assert len(complete) == 4, [(t.number, t.state, t.params) for t in study.get_trials()]
    assert len(set(complete)) == 4, f"both workers ran one grid point: {complete}"
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.FAIL))
    assert len(job_dirs_with_metrics(tmp_path)) == 4  # no trial beyond the 4 was trained
    assert all(t.intermediate_values for t in study.get_trials(states=(TrialState.COMPLETE,)))


# ---- 3. PostgreSQL --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's packages) on 127.0.0.1; yields a database URL."""
    initdbs = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not initdbs:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); apt-get install postgresql"
        )
    bindir = Path(max(initdbs, key=lambda p: float(Path(p).parts[-3]))).parent
    run_as: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            folder.rmdir()
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=60)

    try:
        pg(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "sweeper",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
        pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
    except subprocess.CalledProcessError as err:
        log = folder / "server.log"
        server_log = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {err.stderr.decode(errors='replace')}{server_log}")
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="sweeper", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE optuna_sweep")
        con.close()
        yield f"postgresql://sweeper@127.0.0.1:{port}/optuna_sweep"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_storage(sweeps, postgres_url):
    space = search_space(**{"model.dropout": "choice(0.2,0.5)"})
    code, out = sweeps.run(
        "pg", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={postgres_url}", *space
    )
    assert code == 0, out[-4000:]
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the project installs psycopg2
    study = optuna.load_study(
        study_name=STUDY, storage=postgres_url.replace("postgresql://", "postgresql+psycopg2://")
    )
    assert len(complete_params(study)) == 2
    assert len(set(complete_params(study))) == 2


# ---- 4. an unreachable storage ----------------------------------------------------------------
def test_unreachable_storage_fails_before_training(sweeps, tmp_path):
    code, out = sweeps.run(
        "bad",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/none",
        *search_space(**{"model.dropout": "choice(0.2,0.5)"}),
        timeout=90,
    )
    assert code != 0
    assert "Optuna storage 'postgresql://nobody@127.0.0.1:1/none' cannot be opened" in out, out[
        -4000:
    ]
    assert (
        "OperationalError" in out and "Connection refused" in out
    )  # reached the server's port: none there
    assert "Check hydra.sweeper.storage" in out
    assert "Launching" not in out  # no job was handed to the launcher...
    assert not job_dirs_with_metrics(tmp_path)  # ...and none trained


# ---- 5. every trial fails ---------------------------------------------------------------------
def test_sweep_of_failing_trials_stops_with_a_summary(sweeps, tmp_path):
    code, out = sweeps.run(
        "failing",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failure_rate=1.0",
        "data.ties=bogus",
        *search_space(**{"model.dropout": "choice(0.2,0.5)"}),
        timeout=120,
    )
    assert code != 0
    assert "2 trial(s) failed (max_failure_rate=1.0)" in out, out[-4000:]
    # each failure, with its cause (ConfigError, a DataError, once the config is checked first)
    assert len(re.findall(r"(?:Data|Config)Error: data.ties='bogus'", out)) >= 2, out[-4000:]
    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
    assert not job_dirs_with_metrics(tmp_path)


# ---- stale trials, in process: the two ways a killed worker leaves a RUNNING trial ------------
def test_fail_stale_marks_dead_trials_failed(tmp_path):
    from lstm_tweets.sweeper import ResumableOptunaSweeperImpl, open_storage

    storage = open_storage(
        f"sqlite:///{tmp_path / 'stale.db'}", heartbeat_interval=1, grace_period=1
    )
    study = optuna.create_study(study_name="stale", storage=storage)
    ask = ResumableOptunaSweeperImpl.ask
    silent = ask(study)  # died before its first heartbeat: Optuna's fail_stale_trials skips it
    stopped = ask(study)
    storage.record_heartbeat(stopped._trial_id)  # died after beating once
    ResumableOptunaSweeperImpl.fail_stale(study, storage)
    assert [t.state for t in study.get_trials()] == [
        TrialState.RUNNING
    ] * 2  # within the grace period
    time.sleep(2.2)  # SQLite stamps heartbeats to the whole second
    alive = ask(study)
    storage.record_heartbeat(alive._trial_id)
    ResumableOptunaSweeperImpl.fail_stale(study, storage)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {
        silent.number: TrialState.FAIL,
        stopped.number: TrialState.FAIL,
        alive.number: TrialState.RUNNING,
    }


# ---- workers that open a new SQLite storage at the same instant --------------------------------
@pytest.mark.parametrize(
    "collision",
    [
        "(sqlite3.OperationalError) table studies already exists",
        "(sqlite3.IntegrityError) UNIQUE constraint failed: alembic_version.version_num",
    ],
)
def test_storage_created_by_another_worker_meanwhile_is_opened(tmp_path, monkeypatch, collision):
    """Two workers started together on a new SQLite file both create its tables; the loser fails
    with one of these errors (about one start in four, measured with two real processes) and must
    open the storage on a second try, while a storage that cannot be reached is not retried."""
    import sqlalchemy.exc

    from lstm_tweets import sweeper

    calls = []
    kind = (
        sqlalchemy.exc.OperationalError
        if "Operational" in collision
        else sqlalchemy.exc.IntegrityError
    )

    class Colliding(optuna.storages.RDBStorage):
        def __init__(self, url, **kwargs):
            calls.append(url)
            super().__init__(url, **kwargs)  # the other worker creates the schema...
            if len(calls) == 1:
                raise kind(
                    "CREATE TABLE studies ...", {}, Exception(collision)
                )  # ...as this one fails

    monkeypatch.setattr(optuna.storages, "RDBStorage", Colliding)
    storage = sweeper.open_storage(
        f"sqlite:///{tmp_path / 'new.db'}", heartbeat_interval=30, grace_period=None
    )
    assert len(calls) == 2 and storage is not None
    optuna.create_study(study_name="opened", storage=storage)

    calls.clear()
    with pytest.raises(sweeper.SweepFailed, match="cannot be opened: OperationalError"):
        sweeper.open_storage(
            "postgresql://nobody@127.0.0.1:1/none", heartbeat_interval=30, grace_period=None
        )
    assert len(calls) == 1


# ---- 6. a re-run right after kill -9 (no waiting out the heartbeat) --------------------------
def test_rerun_right_after_kill_reaches_exactly_n_trials(sweeps, tmp_path):
    """The killed run's RUNNING trial is known dead at once (its owner process on this machine is
    gone), failed and redone: the re-run, started immediately with the default 30 s heartbeat,
    ends with exactly n_trials and repeats no completed parameter set."""
    space = search_space(**{"model.dropout": "choice(0.1,0.2,0.3)"})
    overrides = ["hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=median", *space]
    db = tmp_path / "optuna.db"
    first = sweeps.start("sw1", *overrides)
    kill_when_second_trial_trains(sweeps, first, db, tmp_path / "sw1")
    before = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path)).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    code, out = sweeps.run("sw2", *overrides)  # at once
    assert code == 0, out[-4000:]
    # Failed before any job was launched: its heartbeat (30 s, grace 60 s) was not waited out.
    marked = out.index("Marked 1 stale trial(s) of a crashed run as failed: [1]")
    assert marked < out.index("Launching")

    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(counted) == 3, [(t.number, t.state) for t in study.trials]
    params = [t.params["model.dropout"] for t in counted]
    assert sorted(params) == [0.1, 0.2, 0.3]  # each point once: none repeated, none lost
    assert study.trials[0].params == before[0].params and study.trials[0].state == before[0].state
    assert study.trials[1].state == TrialState.FAIL
    assert not study.get_trials(states=(TrialState.RUNNING,))
    for trial in counted:  # reported after every validation
        assert trial.intermediate_values


def test_owner_process_liveness(tmp_path):
    from lstm_tweets.sweeper import owner_is_gone, owner_record

    me = owner_record()
    assert not owner_is_gone(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert owner_is_gone({**me, "pid": child.pid, "start": None})  # exited (and reaped)
    assert owner_is_gone({**me, "start": "1"})  # the pid now belongs to another process
    assert not owner_is_gone({**me, "pid": child.pid, "host": "another-machine"})  # unknown there
    assert not owner_is_gone({**me, "pid": child.pid, "boot": "another-boot"})
    assert not owner_is_gone(None)


# ---- 7. pruning inside the Lightning run --------------------------------------------------------
PRUNE = [
    "hydra/sweeper/pruner=median",  # defaults: 5 startup trials, no warm-up
    "hydra/sweeper/sampler=tpe",  # seeded: the same 10 parameter sets every time
    "hydra.sweeper.sampler.seed=7",
    "hydra.sweeper.n_trials=10",
    "trainer.max_epochs=8",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=4",
    "data.batch_size=32",
    *search_space(
        **{
            "model.lr": "choice(0.0003,0.001,0.003,0.01,0.03)",
            "model.dropout": "choice(0.1,0.3,0.5)",
        }
    ),
]


def test_pruning_sweep(sweeps, tmp_path):
    code, out = sweeps.run("prune", *PRUNE, timeout=600)
    assert code == 0, out[-4000:]
    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    # repeats of a tried point are dropped (FAIL, `dropped`) and never trained
    states = [t.state for t in study.trials if "dropped" not in t.user_attrs]
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) >= 1, [(t.number, t.intermediate_values) for t in study.trials]
    assert len(pruned) + len(complete) == 10 == len(states)
    assert len({tuple(sorted(t.params.items())) for t in pruned + complete}) == 10
    # job folders count launched jobs; metrics.json names its trial (dropped repeats never ran)
    runs = {}
    for path in (tmp_path / "prune").glob("*/metrics.json"):
        run = json.loads(path.read_text())
        runs[run["optuna_trial"]] = run
    assert sorted(runs) == sorted(t.number for t in pruned + complete)
    for trial in complete:
        assert sorted(trial.intermediate_values) == list(range(8))  # every epoch's validation
    for trial in pruned:
        epochs = sorted(trial.intermediate_values)
        assert epochs == list(range(len(epochs))) and len(epochs) < 8  # stopped early
        assert trial.value == trial.intermediate_values[epochs[-1]]
        run = runs[trial.number]
        assert run["pruned"] is True and run["pruned_epoch"] == epochs[-1]
        assert run["epochs_trained"] == epochs[-1] + 1
    done = runs[complete[0].number]
    assert done["pruned"] is False and done["optimized_metric"] == "val/acc_lift"

    folder = tmp_path / "prune" / "optuna"
    for name in (
        "optimization_history",
        "param_importances",
        "parallel_coordinate",
        "intermediate_values",
    ):
        assert (folder / f"{name}.png").stat().st_size > 10_000, name
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["objective"] == "val/acc_lift" and best["value"] == study.best_value
    assert best["params"] == study.best_params
    command = best["command"]
    assert command.startswith("lstm-tweets-train ") and "hydra.mode=RUN test=true" in command
    assert f"model.lr={study.best_params['model.lr']!r}" in command
    assert "choice(" not in command and "optuna_trial" not in command
    results = yaml.safe_load((tmp_path / "prune" / "optimization_results.yaml").read_text())
    assert results["n_complete"] == len(complete) and results["n_pruned"] == len(pruned)


def test_pruning_refuses_several_objectives(sweeps, tmp_path):
    code, out = sweeps.run(
        "mo-prune", "hydra/sweeper/pruner=median", "hydra.sweeper.n_trials=2", base=PARETO
    )
    assert code != 0
    assert "Optuna prunes single-objective studies only" in out, out[-4000:]
    assert not job_dirs_with_metrics(tmp_path)


# ---- 8. submitit: jobs in their own processes ----------------------------------------------------
SUBMITIT_TINY = [
    a for a in TINY if a not in ("hparams_search=optuna", "hydra/sweeper/sampler=grid")
]


def test_submitit_local_multirun_writes_each_jobs_metrics(sweeps, tmp_path):
    code, out = sweeps.run(
        "submitit",
        "hydra/launcher=submitit_local",
        "data.interval=5,10",
        "trainer.max_epochs=1",
        base=SUBMITIT_TINY,
        timeout=300,
    )
    assert code == 0, out[-4000:]
    runs = [json.loads(p.read_text()) for p in job_dirs_with_metrics(tmp_path / "submitit")]
    assert sorted(r["interval"] for r in runs) == [5, 10]
    assert len(list((tmp_path / "submitit" / ".submitit").rglob("*_result.pkl"))) == 2


def test_joblib_launcher_runs_jobs_side_by_side_with_the_same_results(sweeps, tmp_path):
    """`make comparison WORKERS=2`: two jobs at a time through Hydra's joblib launcher, one torch
    thread each. A study's numbers must not depend on it: the same jobs run one after the other
    (the basic launcher) give the same test predictions (thread counts only change float
    rounding)."""
    grid = ["data.interval=5,10", "trainer.max_epochs=1", "++trainer.limit_test_batches=3"]
    code, out = sweeps.run(
        "joblib",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "threads=1",
        *grid,
        base=SUBMITIT_TINY,
        timeout=300,
    )
    assert code == 0, out[-4000:]
    assert "Multirun done: 2 jobs, 2 finished, 0 failed" in out, out[-4000:]
    code, out = sweeps.run("serial", *grid, base=SUBMITIT_TINY, timeout=300)
    assert code == 0, out[-4000:]

    def predictions(name: str) -> dict[int, pd.DataFrame]:
        return {
            json.loads(p.read_text())["interval"]: pd.read_csv(p.parent / "predictions_test.csv")
            for p in job_dirs_with_metrics(tmp_path / name)
        }

    side_by_side, serial = predictions("joblib"), predictions("serial")
    assert sorted(side_by_side) == sorted(serial) == [5, 10]
    for interval, frame in serial.items():
        other = side_by_side[interval]
        assert len(frame) > 0 and (frame["id"] == other["id"]).all()
        assert (frame["predicted"] == other["predicted"]).all()
        assert np.allclose(frame["prob_1"], other["prob_1"], atol=1e-5)


def test_sweep_with_pruning_through_submitit_local(sweeps, tmp_path):
    """resumable_optuna + submitit_local: two trials at once, each in its own process, report to
    the study through its storage; the sweeper counts them to the total."""
    space = search_space(**{"model.dropout": "choice(0.1,0.5)"})
    code, out = sweeps.run(
        "sub-sweep",
        "hydra/launcher=submitit_local",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "trainer.max_epochs=2",
        *space,
        timeout=400,
    )
    assert code == 0, out[-4000:]
    study = optuna.load_study(study_name=STUDY, storage=sqlite_url(tmp_path))
    counted = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(counted) == 2 and len(study.trials) == 2
    assert all(sorted(t.intermediate_values) == [0, 1] for t in counted)  # from the job processes
    assert out.count("Submitit 'local' sweep output dir") == 1  # one batch of two jobs
    results = [json.loads(p.read_text()) for p in job_dirs_with_metrics(tmp_path / "sub-sweep")]
    assert sorted(r["optuna_trial"] for r in results) == [0, 1]
