"""Malformed overrides: each gets its one-line message, exit code 2, and nothing on disk changes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from gan_lab.train import run
from tests.conftest import compose_train_config, run_cli

# (overrides, the start of the expected message: key=value)
MALFORMED = [
    (["data.batch_size=0"], "data.batch_size=0 is invalid"),
    (["data.batch_size=many"], "data.batch_size='many' is invalid"),
    (["data.image_size=4"], "data.image_size=4 is invalid"),
    (["data.channels=2"], "data.channels=2 is invalid"),
    (["data.heldout_fraction=1.5"], "data.heldout_fraction=1.5 is invalid"),
    (["data.hflip=sometimes"], "data.hflip='sometimes' is invalid"),
    (["model.n_critic=0"], "model.n_critic=0 is invalid"),
    (["model.optimizer_g.lr=-1"], "model.optimizer_g.lr=-1 is invalid"),
    (["model.optimizer_d.betas=[0.5,1.5]"], "model.optimizer_d.betas=[0.5, 1.5] is invalid"),
    (["model.optimizer_g.weight_decay=-0.1"], "model.optimizer_g.weight_decay=-0.1 is invalid"),
    (["model.ema_decay=1.5"], "model.ema_decay=1.5 is invalid"),
    (["model.ema_rampup=0"], "model.ema_rampup=0 is invalid"),
    (["model.lr_schedule=cosine"], "model.lr_schedule='cosine' is invalid"),
    (["model.lr_decay_start=1.0"], "model.lr_decay_start=1.0 is invalid"),
    (["model.grad_clip_d=-1"], "model.grad_clip_d=-1 is invalid"),
    (["seed=abc"], "seed='abc' is invalid"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 is invalid"),
    (["trainer.precision=8"], "trainer.precision=8 is invalid"),
    (["trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val=1.0 is invalid"),
    (["trainer.accelerator=quantum"], "trainer.accelerator='quantum' is invalid"),
    (
        ["trainer.devices=3"],
        "data.batch_size=64 is invalid: the global batch must divide by world size 3",
    ),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 is invalid"),
    (
        ["callbacks.model_checkpoint.every_n_train_steps=0"],
        "callbacks.model_checkpoint.every_n_train_steps=0",
    ),
    (
        ["callbacks.divergence_guard.policy=ignore"],
        "callbacks.divergence_guard.policy='ignore' is invalid",
    ),
    (
        ["callbacks.health_monitor.policy=panic"],
        "callbacks.health_monitor.policy='panic' is invalid",
    ),
    # combinations
    (
        ["trainer.precision=16-mixed", "trainer.accelerator=cpu"],
        "trainer.precision='16-mixed' is invalid: fp16",
    ),
    (
        ["model.lr_schedule=linear", "trainer.max_steps=-1", "trainer.max_epochs=3"],
        "model.lr_schedule='linear'",
    ),
    (
        ["trainer.max_steps=-1", "trainer.max_epochs=-1"],
        "trainer.max_steps=-1 is invalid: with trainer.max_epochs",
    ),
    (
        ["data/source=synthetic", "data.source.num_samples=16"],
        "data.source.num_samples=16 is invalid",
    ),
    (["ckpt_path=/no/such/file.ckpt"], "ckpt_path='/no/such/file.ckpt' is invalid"),
]


def tree_state(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes and its mtime: any change shows."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        + f"@{p.stat().st_mtime_ns}"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An earlier run that must survive every mistake untouched."""
    old = tmp_path / "old_run"
    (old / "checkpoints").mkdir(parents=True)
    (old / "checkpoints" / "last.ckpt").write_bytes(b"weights of a week of training")
    (old / "tensorboard").mkdir()
    (old / "config_resolved.yaml").write_text("seed: 1\n")
    return tmp_path


def expect_one_line_error(cfg, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("overrides", "expected"), MALFORMED, ids=[" ".join(o) for o, _ in MALFORMED]
)
def test_malformed_override_gets_its_message_and_changes_nothing(
    overrides: list[str], expected: str, workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    before = tree_state(workspace)
    cfg = compose_train_config(overrides, workspace / "new_run")
    err = expect_one_line_error(cfg, capsys)
    assert err.startswith("gan-train: error: ") and expected in err, err
    assert tree_state(workspace) == before
    assert not (workspace / "new_run").exists()  # not even the config was written


def test_an_existing_run_dir_is_never_overwritten(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    before = tree_state(workspace)
    err = expect_one_line_error(compose_train_config([], workspace / "old_run"), capsys)
    assert re.search(r"paths\.output_dir='.*old_run' is invalid: already holds a run", err)
    assert "ckpt_path=last" in err
    assert tree_state(workspace) == before


def test_output_dir_under_a_file_and_a_corrupted_tensorboard_dir_are_clear_errors(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = workspace / "a_file"
    blocker.write_text("not a folder")
    err = expect_one_line_error(compose_train_config([], blocker / "run"), capsys)
    assert "paths.output_dir=" in err and "is a file, not a folder" in err

    run_dir = workspace / "old_run"
    (run_dir / "tensorboard" / "events.out.tfevents.1.host.1.1").write_bytes(b"\x00garbage" * 10)
    err = expect_one_line_error(compose_train_config(["ckpt_path=last"], run_dir), capsys)
    assert "logger.tensorboard.save_dir=" in err and "corrupted event file" in err

    (run_dir / "tensorboard").rename(run_dir / "tb_moved")
    (run_dir / "tensorboard").write_text("a file where the TensorBoard folder belongs")
    err = expect_one_line_error(compose_train_config(["ckpt_path=last"], run_dir), capsys)
    assert "is a file, not a TensorBoard folder" in err


def test_read_only_output_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: let the permission check see what a user would
        real_access = os.access
        monkeypatch.setattr(
            "gan_lab.preflight.run_dir.os.access",
            lambda p, m: Path(p) != locked and real_access(p, m),
        )
    err = expect_one_line_error(compose_train_config([], locked / "run"), capsys)
    assert "paths.output_dir=" in err and "is not writable" in err


def test_the_real_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    result = run_cli(["model.n_critic=-2", "trainer.max_steps=5"], tmp_path, timeout=180)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("gan-train: error: model.n_critic=-2 is invalid")
    )


@pytest.mark.slow
def test_the_real_cli_refuses_an_existing_run_dir(workspace: Path) -> None:
    old = workspace / "old_run"
    before = tree_state(old / "checkpoints")
    result = run_cli([f"hydra.run.dir={old}", "trainer.max_steps=5"], workspace, timeout=180)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "already holds a run" in result.stderr
    assert tree_state(old / "checkpoints") == before


def test_gan_train_validates_once_and_builds_everything_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constructors own their arguments, so they run before the config is saved."""
    import gan_lab.train as train_module

    calls: list[str] = []
    record = lambda name, result=None: lambda *a: calls.append(name) or result  # noqa: E731
    parts = SimpleNamespace(datamodule=None, model=None, callbacks=[], ckpt_path=None)
    monkeypatch.setattr("gan_lab.preflight.validate_config", record("validate"))
    monkeypatch.setattr(train_module, "build_run", record("build", parts))
    # the preflight (preflight_hook.py) also loads the data, checks the checkpoint, locks the dir
    monkeypatch.setattr("gan_lab.preflight_run.check_data", record("check data"))
    monkeypatch.setattr("gan_lab.preflight_run.check_checkpoint_fits", record("check ckpt"))
    monkeypatch.setattr("gan_lab.run_lock.hold_run_dir", record("lock"))
    monkeypatch.setattr(train_module, "print_and_save_config", record("save config"))
    monkeypatch.setattr(train_module, "fit", record("fit", {}))
    monkeypatch.setattr(train_module, "write_run_metrics", record("write metrics"))
    train_module.train_and_record(compose_train_config([], tmp_path / "run"))
    assert calls == [
        "validate", "build", "check data", "check ckpt", "lock", "save config", "fit", "write metrics",
    ]  # fmt: skip
