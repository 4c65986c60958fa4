"""Plain helpers shared by test files (fixtures live in conftest.py)."""

import json
import subprocess
from pathlib import Path

# ---- what a finished run writes (DESIGN.md "Run outputs") ------------------------------------
DESIGN_METRIC_KEYS = {
    "test_accuracy",
    "test_f1",
    "test_auroc",
    "test_mcc",
    "n_train",
    "n_val",
    "n_test",
    "majority_accuracy",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_accuracy_wilson_low",
    "test_accuracy_wilson_high",
    "n_test_days",
    "lift_vs_majority",
    "p_value_vs_majority",
    "best_epoch",
    "seed",
    "interval",
    "target",
    "data_report",
}


def read_metrics(output_dir: Path) -> dict:
    return json.loads((output_dir / "metrics.json").read_text())


def run_in_parallel(
    commands: dict[str, list[str]], **popen_kwargs
) -> dict[str, subprocess.CompletedProcess]:
    """Start every command at once (each pays torch's import alone) and wait for all."""
    running = {
        name: subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs
        )
        for name, cmd in commands.items()
    }
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(
            commands[name], process.returncode, stdout, stderr
        )
    return results
