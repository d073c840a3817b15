"""`gan-train` end to end, as a user runs it: files written, scalars and images logged."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lab.machine import describe_cpu
from gan_lab.train import train
from tests.conftest import CIFAR_FOLDER, data_overrides, requires_cifar, run_cli

EXPECTED_SCALARS = {
    "loss/d",
    "loss/g",
    "D(x)",
    "D(G(z))",
    "grad_norm/g",
    "grad_norm/d",
    "lr/g",
    "lr/d",
}


def only_run_dir(root: Path) -> Path:
    runs = list((root / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_default_experiment_trains_and_leaves_a_complete_run_dir(tmp_path: Path) -> None:
    steps = 200
    result = run_cli([f"trainer.max_steps={steps}", *data_overrides("mnist")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)

    assert (run_dir / "config_resolved.yaml").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "CONFIG" in result.stdout  # the config tree is printed at start
    machine = json.loads((run_dir / "machine.json").read_text())  # figures are per CPU type
    assert machine["cpu"] == describe_cpu() and machine["torch_threads"] >= 1

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == steps
    assert ckpt["run_config"]["model"]["generator"]["_target_"].endswith("MLPGenerator")
    assert any(k.startswith("ema.") for k in ckpt["state_dict"])

    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert set(tags["scalars"]) >= EXPECTED_SCALARS, tags["scalars"]
    assert "samples/fixed_noise" in tags["images"]
    grid = acc.Images("samples/fixed_noise")[-1]
    assert grid.step == steps and grid.width > 8 * 28
    losses = [e.value for e in acc.Scalars("loss/g")]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sorted((run_dir / "samples").glob("step_*.png"))


def test_a_second_run_gets_its_own_directory(tmp_path: Path) -> None:
    args = ["trainer.max_steps=2", "debug=limit", *data_overrides("mnist")]
    for _ in range(2):
        assert run_cli(args, tmp_path).returncode == 0
    assert len(list((tmp_path / "logs" / "debug" / "runs").iterdir())) == 2


@requires_cifar
def test_cifar10_dcgan_from_the_image_folder(make_cfg) -> None:
    cfg = make_cfg(
        "experiment=cifar10_dcgan",
        f"data.path={CIFAR_FOLDER}",
        "trainer.max_steps=3",
        "data.batch_size=16",
        "model.generator.width=8",
        "model.discriminator.width=8",
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["loss/g"]))
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3


def test_last_ckpt_holds_the_final_step_not_the_last_periodic_one(make_cfg) -> None:
    cfg = make_cfg(
        "trainer.max_steps=7",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "data.batch_size=8",
        "model.generator.width=8",
        "model.discriminator.width=8",
        dataset="mnist",
    )
    train(cfg)
    ckpt_dir = Path(cfg.paths.output_dir) / "checkpoints"
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["global_step"] == 7
    assert torch.load(ckpt_dir / "step_0000005.ckpt", weights_only=True)["global_step"] == 5
