"""No code runs from a checkpoint (allow-listed rebuild) and no corruption goes unnoticed (digest)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from gan_lab.checkpoint_integrity import INTEGRITY_KEY, payload_digest
from gan_lab.checkpoint_io import CheckpointError, read_checkpoint, resolve_resume_path
from gan_lab.safe_instantiate import UnsafeConfigError, check_tree
from gan_lab.train import CONFIG_PATH
from tests.conftest import compose_train_config
from tests.forked_cli import run_forked
from tests.hostile_fixtures import (
    TRAIN_ARGS,
    flip_tensor_bytes,
    resave,
    train_tiny_run,
    with_target,
)

ADAM = "torch.optim.Adam"
GAN = "gan_lab.models.gan_module.GANModule"
REFUSED = [
    ({"_target_": "builtins.open", "_args_": ["/tmp/x", "w"]}, "model._target_='builtins.open'"),
    ({"_target_": GAN, "generator": {"_target_": "os.system"}}, "model.generator._target_"),
    ({"_target_": GAN, "_args_": [{"_target_": "shutil.rmtree"}]}, "model._args_[0]._target_"),
    ({"_target_": "gan_lab.models.nets.mlp.torch.save"}, "resolves to torch.serialization"),
    ({"_target_": "torch.optim.adam.torch.load"}, "resolves to torch.serialization"),
    (
        {"_target_": "gan_lab.data.tensor_cache.store_cached", "_partial_": True},
        "it is a function, not a class",
    ),
    ({"_target_": "gan_lab.models.nets.mlp.nn.Linear"}, "resolves to torch.nn"),
    ({"_target_": "gan_lab.models.nowhere.Net"}, "does not exist"),
    ({"_target_": ["builtins.open"]}, "model._target_=['builtins.open']"),
    ({"_target_": ADAM, "lr": "${oc.env:HOME}"}, "model.lr='${oc.env:HOME}' is an interpolation"),
    ({"_target_": ADAM, "params": {"nested": [{"_target_": "os.remove"}]}}, "params.nested[0]"),
]


@pytest.mark.parametrize(("tree", "named"), REFUSED, ids=[n for _, n in REFUSED])
def test_foreign_targets_anywhere_in_the_tree_are_refused_naming_the_key(
    tree: dict[str, Any], named: str
) -> None:
    with pytest.raises(UnsafeConfigError, match=re.escape(named)) as info:
        check_tree(tree, "model", "checkpoint x.ckpt")
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (Path(CONFIG_PATH) / "experiment").glob("*.yaml"))
)
def test_every_shipped_experiment_is_inside_the_allow_list(experiment: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"experiment={experiment}"], tmp_path)
    for key in ("model", "data"):
        check_tree(OmegaConf.to_container(cfg[key], resolve=True), key, experiment)


def test_a_checkpoint_that_would_create_a_file_creates_none_in_any_command(
    tmp_path: Path,
) -> None:
    """``pathlib.Path(victim).touch()`` as the generator: Hydra would run it; the commands do not."""
    victim = tmp_path / "created_by_the_checkpoint"
    touch = {"_target_": "pathlib.Path.touch", "_args_": [{"_target_": "pathlib.Path", "_args_": [str(victim)]}]}  # fmt: skip
    hydra.utils.instantiate(OmegaConf.create(touch))  # the payload works when instantiated blindly
    assert victim.exists()
    victim.unlink()

    run = train_tiny_run(tmp_path / "run")
    hostile = resave(run / "checkpoints" / "last.ckpt", tmp_path / "hostile.ckpt", with_target(touch["_target_"], touch["_args_"]))  # fmt: skip
    for command, args in (
        ("eval", [f"ckpt_path={hostile}", f"output_file={tmp_path}/m.json"]),
        ("sample", [f"ckpt_path={hostile}", f"output_dir={tmp_path}/samples"]),
    ):
        result = run_forked(command, args, tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [
            f"gan-{command}: error: checkpoint {hostile}: run_config.model.generator._target_="
            "'pathlib.Path.touch' is not allowed; a stored config may only name classes of "
            "gan_lab.models, gan_lab.data, torch.optim"
        ]
        assert not victim.exists()
    # gan-train resumes weights and state from the file, the networks from its own config
    result = run_forked("train", [*TRAIN_ARGS, f"ckpt_path={hostile}", "trainer.max_steps=3"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert not victim.exists()


# ------------------------------------------------------------------------------ integrity
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("integrity") / "run")


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def test_every_written_checkpoint_carries_a_digest_that_verifies(run_dir: Path) -> None:
    names = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert names == ["last.ckpt", "step_0000001.ckpt", "step_0000002.ckpt"]
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        raw = torch.load(path, weights_only=True)
        assert raw[INTEGRITY_KEY] == {"algorithm": "sha256", "digest": payload_digest(raw)}
        read_checkpoint(path)  # verifies


def test_flipped_tensor_bytes_are_caught_and_last_falls_back_to_the_newest_good_one(
    run_dir: Path, tmp_path: Path
) -> None:
    run = copy_run(run_dir, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    flip_tensor_bytes(last, n=64)
    torch.load(last, weights_only=True)  # torch alone does not notice: the bytes load
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(last)
    assert str(info.value).startswith(f"checkpoint {last} is corrupted: its sha256 digest")
    assert len(str(info.value).splitlines()) == 1
    for mode in ("last", "auto"):
        assert resolve_resume_path(mode, run) == str(run / "checkpoints" / "step_0000002.ckpt")
    flip_tensor_bytes(run / "checkpoints" / "step_0000002.ckpt")
    assert resolve_resume_path("auto", run) == str(run / "checkpoints" / "step_0000001.ckpt")


def test_a_changed_step_counter_is_caught_too(run_dir: Path, tmp_path: Path) -> None:
    """The digest covers every entry, not only tensors: a rewritten global_step is corruption."""
    path = tmp_path / "edited.ckpt"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["global_step"] += 1000
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="digest does not match"):
        read_checkpoint(path)


def test_checkpoints_from_before_digests_still_load(
    run_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.ckpt"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    del checkpoint[INTEGRITY_KEY]
    torch.save(checkpoint, path)
    assert read_checkpoint(path)["global_step"] == 2
    assert "has no digest" in caplog.text
