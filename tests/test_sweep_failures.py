"""A sweep survives a bad job: it is recorded and ranked last, the other jobs run; the summary
skips folders that are not training runs and reports unreadable ones."""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

from gan_lab.errors import ConfigError
from gan_lab.sweep_jobs import STATUS_FILE, read_status, run_recorded
from gan_lab.sweep_summary import main as summary_main
from gan_lab.sweep_summary import summarize
from gan_lab.train import main
from tests.conftest import FAST_OVERRIDES, TINY_MLP_GAN


def test_a_failing_job_is_recorded_the_multirun_goes_on_and_exits_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    one_cpu_thread: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_LAB_ROOT", str(tmp_path))
    args = ["-m", "model.n_critic=0,1", *FAST_OVERRIDES, *TINY_MLP_GAN, "trainer.max_steps=2"]
    monkeypatch.setattr(sys, "argv", ["gan-train", *args])
    GlobalHydra.instance().clear()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with pytest.raises(SystemExit) as stop:
            main()  # the failed job 0 does not abort the sweep; the command fails at the end
    finally:
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        GlobalHydra.instance().clear()
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert stop.value.code == 1  # a CI job or a SLURM array sees that the sweep had failures
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last_line
        == f"gan-train: 1 of 2 jobs failed (0); their reasons are in {sweep / 'summary.md'}"
    )
    failed = read_status(sweep / "0")
    assert failed is not None and failed["status"] == "failed"
    assert failed["reason"].startswith("model.n_critic=0 is invalid")
    assert read_status(sweep / "1") == {"status": "ok", "reason": None}
    assert json.loads((sweep / "1" / "metrics.json").read_text())["g_step"] == 2
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["rank"], r["job"]) for r in rows] == [("1", "1"), ("2", "0")]  # failed last
    assert rows[1]["status"].startswith("failed: model.n_critic=0 is invalid")
    assert "| 2 | 0 | failed: model.n_critic=0 is invalid" in (sweep / "summary.md").read_text()


def test_a_failed_job_scores_nan_for_optuna_and_a_stop_signal_still_ends_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def bad(_cfg: object) -> float:
        raise ConfigError("model.n_critic", 0, "must be an integer >= 1")

    value = run_recorded("gan-train", bad, None, tmp_path / "3", float("nan"))
    assert math.isnan(value)  # Optuna records a NaN objective as a failed trial and goes on
    assert json.loads((tmp_path / "3" / STATUS_FILE).read_text())["status"] == "failed"
    assert capsys.readouterr().err.strip() == (
        "gan-train: job 3 failed: model.n_critic=0 is invalid: must be an integer >= 1"
    )

    def stopped(_cfg: object) -> float:
        raise SystemExit(143)

    with pytest.raises(SystemExit):
        run_recorded("gan-train", stopped, None, tmp_path / "4", float("nan"))


def fake_job(sweep: Path, job: str, overrides: list[str], config: dict | None = None) -> Path:
    run = sweep / job
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    cfg = config if config is not None else {"trainer": {}, "model": {}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


def test_the_summary_skips_eval_runs_and_reports_unreadable_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    for job, lr, value in (("0", "1e-4", 0.3), ("3", "8e-4", 0.1)):
        run = fake_job(sweep, job, [f"model.optimizer_g.lr={lr}"])
        (run / "metrics.json").write_text(json.dumps({"sweep/pixel_swd": value}))
    failed = fake_job(sweep, "1", ["model.optimizer_g.lr=2e-4"])
    (failed / STATUS_FILE).write_text(json.dumps({"status": "failed", "reason": "diverged"}))
    corrupt = fake_job(sweep, "2", ["model.optimizer_g.lr=4e-4"])
    (corrupt / "metrics.json").write_text('{"sweep/pixel_swd": 0.0')  # torn
    fake_job(
        sweep, "eval_run", ["ckpt_path=x.ckpt"], config={"task_name": "eval", "n_samples": 10}
    )  # a gan-eval dir
    multirun = {"optimized_metric": "sweep/pixel_swd", "hydra": {"sweeper": {"direction": "minimize"}}}  # fmt: skip
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))

    summary = summarize(sweep)
    assert [(r.job, r.status.split(":")[0]) for r in summary.runs] == [
        ("3", "ok"),
        ("0", "ok"),
        ("1", "failed"),  # failed and unreadable last, in job order
        ("2", "unreadable"),
    ]
    assert summary_main([str(sweep)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "gan-sweep-summary: job 1 failed: diverged",
        "gan-sweep-summary: job 2 unreadable: metrics.json (JSONDecodeError: Expecting ',' "
        "delimiter: line 1 column 24 (char 23))",
    ]
