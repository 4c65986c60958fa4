"""DDP: the documented way to scale out, checked with two CPU processes (ddp_spawn, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(Path(sys.executable).with_name("lstm-tweets-train"))


@pytest.mark.slow
def test_ddp_spawn_with_two_cpu_processes_trains_and_tests_once(cache_dir, tmp_path):
    out = tmp_path / "run"
    command = [
        TRAIN,
        "trainer=ddp",
        "trainer.strategy=ddp_spawn",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "++trainer.limit_train_batches=6",
        "++trainer.limit_val_batches=3",
        "callbacks.rich_progress_bar=null",
        "embedding=random",
        "embedding.dim=16",
        "model.hidden_dim=16",
        f"paths.cache_dir={cache_dir}",
        f"hydra.run.dir={out}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_epoch"] in (0, 1)
    # The test split is scored once, on one device: every test sample exactly once.
    assert metrics["n_test"] == len((out / "predictions_test.csv").read_text().splitlines()) - 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
