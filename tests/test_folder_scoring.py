"""`gan-eval images=DIR`: a folder scores as the same images do in memory; any size and mode is
brought to the dataset's shape in the stated way; folder vs folder; one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lab.errors import ConfigError, UserError
from gan_lab.eval import evaluate
from gan_lab.folder_scoring import load_scored_folder
from gan_lab.sample import sample
from tests.test_eval_sample import entry_cfg

CHEAP = "metrics=[classifier_fd,class_coverage]"
# the data of the tiny_gan_run fixture, named again for the folder's reference
TINY_DATA = (
    "data=synthetic", "data.source.num_samples=128", "data.image_size=16", "data.channels=1",
)  # fmt: skip


def test_a_folder_of_lossless_samples_scores_as_the_samples_in_memory(
    tiny_gan_run: Path, tmp_path: Path
) -> None:
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    classifier = f"classifier_path={tiny_gan_run.parent / 'synthetic_classifier.pt'}"
    common = (CHEAP, classifier, "n_reference=40", "batch_size=10", "seed=3")
    written = sample(
        entry_cfg("sample", tmp_path / "s", f"ckpt_path={ckpt}", "n=30", "batch_size=10", "seed=3")
    )
    assert len(written["images"]) == 30
    in_memory = evaluate(
        entry_cfg("eval", tmp_path / "a", f"ckpt_path={ckpt}", "n_samples=30", *common)
    )
    folder = tmp_path / "s" / "images"
    scored = evaluate(entry_cfg("eval", tmp_path / "b", f"images={folder}", *TINY_DATA, *common))
    fd_memory = in_memory["metrics"]["classifier_fd"]["classifier_fd"]
    fd_folder = scored["metrics"]["classifier_fd"]["classifier_fd"]
    assert fd_folder == pytest.approx(fd_memory, rel=1e-9, abs=1e-9) and fd_memory > 0
    histogram = in_memory["metrics"]["class_coverage"]["histogram"]
    assert scored["metrics"]["class_coverage"]["histogram"] == histogram
    assert scored["reference"] == in_memory["reference"] == {"split": "train", "n": 40}
    assert scored["dataset"] == in_memory["dataset"] == "synthetic"
    assert scored["samples"]["n"] == 30 and scored["samples"]["folder"] == str(folder.resolve())
    protocol = scored["metrics"]["classifier_fd"]["protocol"]
    assert protocol.startswith(in_memory["metrics"]["classifier_fd"]["protocol"])
    assert "images folder: " in protocol and "PIL bicubic resize to 16x16" in protocol
    assert (tmp_path / "b" / "metrics.json").is_file()


def write(path: Path, array: np.ndarray, mode: str | None = None, **save: object) -> None:
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(path, **save)


def test_any_size_and_mode_is_converted_cropped_and_resized(tmp_path: Path) -> None:
    folder = tmp_path / "mixed" / "nested"
    folder.mkdir(parents=True)
    wide = np.zeros((32, 48, 3), np.uint8)
    wide[:, :8] = wide[:, -8:] = 255  # white borders that the center crop removes
    write(folder / "a_wide.png", wide)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (100, 150, 200), 0  # fully transparent: alpha is dropped
    write(folder / "b_rgba.png", rgba)
    write(folder / "c_16bit.png", np.full((64, 64), 65535, np.uint16))
    write(folder / "d_photo.jpg", np.full((100, 100, 3), 128, np.uint8), quality=95)
    Image.new("P", (8, 8), 3).save(folder / "e_palette.png")
    (folder / "notes.txt").write_text("not an image")

    grey = load_scored_folder(str(tmp_path / "mixed"), "images", 32, 1, "bicubic")
    assert grey.images.images.shape == (5, 1, 32, 32) and grey.images.images.dtype == torch.uint8
    assert int(grey.images.images[0].max()) == 0  # borders cropped away, no resize at 32
    luma = round(0.299 * 100 + 0.587 * 150 + 0.114 * 200)
    assert abs(int(grey.images.images[1].float().mean()) - luma) <= 1
    assert int(grey.images.images[2].min()) == 255  # 16-bit white is 8-bit white
    assert abs(grey.images.images[3].float().mean() - 128) < 2
    assert "grey (ITU-R 601 luma)" in grey.protocol and "bicubic resize to 32x32" in grey.protocol
    rgb = load_scored_folder(str(tmp_path / "mixed"), "images", 16, 3, "lanczos")
    assert rgb.images.images.shape == (5, 3, 16, 16) and "lanczos" in rgb.protocol
    assert rgb.images.images[1, :, 8, 8].tolist() == [100, 150, 200]
    assert rgb.dataset_key != grey.dataset_key  # the reference cache tells them apart


def test_folder_against_itself_scores_zero_and_reads_its_shape(
    tiny_gan_run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "real"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(24):
        pixels = torch.randint(0, 256, (16, 16), generator=g, dtype=torch.uint8).numpy()
        write(folder / f"{i:03d}.png", pixels)
    classifier = f"classifier_path={tiny_gan_run.parent / 'synthetic_classifier.pt'}"
    report = evaluate(
        entry_cfg("eval", tmp_path / "out", f"images={folder}", f"reference={folder}", CHEAP, classifier)
    )  # fmt: skip
    assert report["reference"]["split"] == "folder" and report["reference"]["n"] == 24
    assert report["dataset"] == f"folder:{folder.resolve()}"
    assert abs(report["metrics"]["classifier_fd"]["classifier_fd"]) < 1e-3
    assert "reference folder: " in report["metrics"]["classifier_fd"]["protocol"]
    assert list((tmp_path / "out" / "cache" / "metrics").glob("ref-folder-folder-24-*.pt"))


def test_bad_folder_settings_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"images='.*missing' is invalid: must be an existing"):
        evaluate(entry_cfg("eval", tmp_path, f"images={tmp_path / 'missing'}", *TINY_DATA))
    with pytest.raises(ConfigError, match=r"images='.*empty' is invalid: holds no images"):
        evaluate(entry_cfg("eval", tmp_path, f"images={tmp_path / 'empty'}", *TINY_DATA))
    with pytest.raises(
        ConfigError, match="resize_filter='cubic' is invalid: choose one of bicubic"
    ):
        load_scored_folder(str(tmp_path / "empty"), "images", 16, 1, "cubic")
    (tmp_path / "one").mkdir()
    write(tmp_path / "one" / "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError, match=r"need a dataset: add data=.*or reference=<folder>"):
        evaluate(entry_cfg("eval", tmp_path, f"images={tmp_path / 'one'}"))
