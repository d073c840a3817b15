"""What is checked before a run writes, and what a run that fails mid-way leaves behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import gan_lab.checkpoint_io as checkpoint_io
from gan_lab.checkpoint_io import read_checkpoint
from gan_lab.data import GANDataModule
from gan_lab.data.sources import ImageFolder
from gan_lab.train import run
from tests.conftest import TINY_MLP_GAN, compose_train_config
from tests.hostile_fixtures import write_png

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def mixed_mode_folder(folder: Path) -> dict[str, tuple[int, int, int]]:
    """One constant image per PIL mode, and the RGB each must arrive as."""
    write_png(folder / "grey16.png", np.full((16, 16), 65535, np.uint16))  # I;16, full white
    write_png(folder / "grey16_mid.png", np.full((16, 16), 32896, np.uint16))  # 128 * 257
    write_png(folder / "rgba.png", np.tile(np.array([10, 20, 30, 0], np.uint8), (16, 16, 1)))
    write_png(folder / "grey.png", np.full((16, 16), 100, np.uint8))
    write_png(folder / "rgb.png", np.tile(np.array([1, 2, 3], np.uint8), (16, 16, 1)))
    from PIL import Image

    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([200, 0, 0] * 256)
    palette.save(folder / "palette.png")
    return {
        "grey16": (255, 255, 255),
        "grey16_mid": (128, 128, 128),
        "rgba": (10, 20, 30),  # alpha dropped
        "grey": (100, 100, 100),
        "rgb": (1, 2, 3),
        "palette": (200, 0, 0),
    }


@pytest.mark.parametrize("channels", [3, 1])
def test_a_folder_mixing_16_bit_rgba_grey_and_palette_images_loads_converted(
    tmp_path: Path, channels: int
) -> None:
    expected = mixed_mode_folder(tmp_path / "images")
    dm = GANDataModule(source=ImageFolder(), path=str(tmp_path / "images"), image_size=8,
                       channels=channels, batch_size=2, heldout_fraction=0.2)  # fmt: skip
    dm.prepare_data()
    images = torch.cat([dm.load_split("train").images, dm.load_split("test").images])
    assert images.dtype == torch.uint8 and images.shape == (6, channels, 8, 8)
    colours = sorted(tuple(int(v) for v in image[:, 0, 0]) for image in images)
    if channels == 1:  # ITU-R 601 luma of each colour
        want = sorted((round(0.299 * r + 0.587 * g + 0.114 * b),) for r, g, b in expected.values())
        assert [c[0] for c in colours] == pytest.approx([w[0] for w in want], abs=1)
    else:
        assert colours == sorted(expected.values())
    assert all(bool((image == image[:, :1, :1]).all()) for image in images)  # still constant


def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    overrides = [*TINY_MLP_GAN, "trainer.max_steps=3", "callbacks.model_checkpoint.every_n_train_steps=1"]  # fmt: skip
    cfg = compose_train_config(overrides, run_dir)
    real_save, saves = torch.save, []

    def save_until_the_disk_is_full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        saves.append(getattr(f, "name", f))
        if len(saves) <= 2:  # step 1: step_0000001.ckpt and last.ckpt
            return real_save(obj, f, *args, **kwargs)
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_io.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(SystemExit) as info:
        run(cfg)
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"gan-train: error: cannot write checkpoint {run_dir}/checkpoints/")
    assert "No space left on device" in lines[0] and "MiB free on that disk" in lines[0]
    monkeypatch.undo()
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["last.ckpt", "step_0000001.ckpt"]  # no temp file of the failed write
    for name in kept:
        assert read_checkpoint(run_dir / "checkpoints" / name)["global_step"] == 1
    assert not (run_dir / ".run.lock").exists()


def test_a_full_disk_anywhere_else_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    from gan_lab.errors import run_cli

    def write_metrics(_cfg: object) -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/run/metrics.json")
        except OSError as err:
            raise RuntimeError("while saving the final metrics") from err

    with pytest.raises(SystemExit) as info:
        run_cli("gan-train", write_metrics, None)
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "gan-train: error: No space left on device writing /run/metrics.json"
    ]


def test_a_lost_device_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from gan_lab.errors import run_cli

    def step(_cfg: object) -> None:
        raise RuntimeError(
            "CUDA error: unspecified launch failure\nCUDA kernel errors might be asynchronously "
            "reported at some other API call, so the stacktrace below might be incorrect."
        )

    with pytest.raises(SystemExit) as info:
        run_cli("gan-train", step, None)
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "gan-train: error: the accelerator failed: CUDA error: unspecified launch failure; "
        "resume from the last checkpoint with ckpt_path=last"
    ]
