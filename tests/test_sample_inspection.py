"""gan-sample inspection: the truncation trick, the nearest-neighbour grid, and the real-vs-fake
picture at the start of training."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lab.callbacks.real_vs_fake import RealVsFake, real_images
from gan_lab.data.sources import ImageSet
from gan_lab.errors import ConfigError
from gan_lab.metrics.features import ClassifierExtractor
from gan_lab.sample import interpolation, sample
from gan_lab.sample_inspection import (
    check_truncation,
    nearest_neighbours,
    truncated_batches,
    truncated_normal,
)
from gan_lab.train import train
from tests.conftest import TINY_MLP_GAN, compose_train_config
from tests.test_eval_sample import entry_cfg


# ------------------------------------------------------------------------------ truncation
def test_truncated_latents_stay_inside_psi_and_follow_the_truncated_normal() -> None:
    psi = 1.0
    z = truncated_normal((200_000,), psi, torch.Generator().manual_seed(0)).double()
    assert z.abs().max() <= psi
    phi, mass = stats.norm.pdf(psi), 2 * stats.norm.cdf(psi) - 1
    assert abs(float(z.mean())) < 0.005
    assert float(z.var()) == pytest.approx(1 - 2 * psi * phi / mass, rel=0.01)  # 0.2911
    ks = stats.kstest(z.numpy(), stats.truncnorm(-psi, psi).cdf)
    assert ks.statistic < 0.005  # same shape as the normal restricted to [-psi, psi]


class Recorder(torch.nn.Module):
    """Remembers the latents it was asked for; draws blank images."""

    latent_dim, num_classes, device = 8, 3, torch.device("cpu")

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(z)
        return torch.zeros(len(z), 1, 2, 2)


def test_gan_sample_latents_are_truncated_everywhere_and_psi_is_checked() -> None:
    recorder = Recorder()
    batches = list(truncated_batches(recorder, 50, 16, seed=0, psi=0.5))
    assert [len(b) for b, _ in batches] == [16, 16, 16, 2]
    assert all(int(y.min()) >= 0 and int(y.max()) < 3 for _, y in batches)  # classes drawn too
    z = torch.cat(recorder.seen)
    assert z.shape == (50, 8) and z.abs().max() <= 0.5 and z.std() > 0.2
    recorder.seen.clear()
    interpolation(recorder, rows=3, steps=4, seed=0, psi=0.5)
    ends = recorder.seen[0].view(3, 4, 8)[:, [0, -1]]
    assert ends.abs().max() <= 0.5 + 1e-6  # both ends of each walk are truncated latents
    assert check_truncation(None) is None and check_truncation(2) == 2.0
    for bad in (0, -0.5, float("nan"), True, "0.7"):
        with pytest.raises(ConfigError, match=r"truncation=.* must be a number > 0"):
            check_truncation(bad)


# ------------------------------------------------------------------------------ nearest neighbours
def test_a_training_image_is_its_own_nearest_neighbour_in_every_space(tiny_gan_run: Path) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 1, 16, 16), generator=g, dtype=torch.uint8)
    train_set = ImageSet(images, torch.zeros(50, dtype=torch.long), ["x"])
    picked = torch.tensor([3, 17, 42])
    classifier = ClassifierExtractor.from_file(tiny_gan_run.parent / "synthetic_classifier.pt")
    for extractor in (None, classifier):
        index, dist = nearest_neighbours(images[picked], train_set, extractor, k=4, batch_size=7)
        assert index.shape == dist.shape == (3, 4)
        assert torch.equal(index[:, 0], picked) and torch.all(dist[:, 0] < 1e-4)
        assert torch.all(dist[:, 1:] >= dist[:, :-1])  # nearest first
    # the chunked running top-k is the brute-force top-k
    queries = torch.randint(0, 256, (5, 1, 16, 16), generator=g, dtype=torch.uint8)
    index, dist = nearest_neighbours(queries, train_set, None, k=6, batch_size=9)
    brute = torch.cdist(queries.flatten(1).double() / 255, images.flatten(1).double() / 255)
    assert torch.equal(index, brute.topk(6, largest=False).indices)


def test_gan_sample_writes_the_nearest_neighbour_grid(tiny_gan_run: Path, tmp_path: Path) -> None:
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    classifier = tiny_gan_run.parent / "synthetic_classifier.pt"
    cfg = entry_cfg(
        "sample", tmp_path, f"ckpt_path={ckpt}", "n=10", "truncation=0.8",
        "nearest_neighbours.enabled=true", "nearest_neighbours.rows=3", "nearest_neighbours.k=4",
        f"nearest_neighbours.classifier_path={classifier}",
    )  # fmt: skip
    written = sample(cfg)
    assert Image.open(written["nearest_neighbours"]).size == (2 + 5 * 18, 2 + 3 * 18)  # 3 x (1+4)
    report = json.loads((tmp_path / "nearest_neighbours.json").read_text())
    assert report["space"] == "classifier" and report["n_train"] == 128
    assert len(report["neighbours"]) == 3
    for row in report["neighbours"]:
        assert len(row["train_index"]) == 4 and row["distance"] == sorted(row["distance"])
    auto = entry_cfg(
        "sample", tmp_path / "auto", f"ckpt_path={ckpt}", "n=4", "nearest_neighbours.enabled=true"
    )
    sample(auto)  # no committed classifier for the synthetic source: pixel space
    assert (
        json.loads((tmp_path / "auto" / "nearest_neighbours.json").read_text())["space"] == "pixel"
    )
    with pytest.raises(ConfigError, match=r"nearest_neighbours.space='lpips' is invalid"):
        sample(entry_cfg("sample", tmp_path / "bad", f"ckpt_path={ckpt}", "n=4",
                         "nearest_neighbours.enabled=true", "nearest_neighbours.space=lpips"))  # fmt: skip


# ------------------------------------------------------------------------------ real vs fake
def test_real_vs_fake_picture_is_written_and_logged_at_step_0(tmp_path: Path) -> None:
    train(compose_train_config([*TINY_MLP_GAN, "trainer.max_steps=1"], tmp_path / "run"))
    picture = Image.open(tmp_path / "run" / "samples" / "real_vs_fake.png")
    grid = 2 + 8 * 18  # 64 fixed-noise samples of 16 px in rows of 8, 2 px padding
    assert picture.size == (2 * grid + 8, grid)
    left = np.asarray(picture.convert("L"))[:, :grid]
    assert left.std() > 0  # real images, not a blank
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Images("samples/real_vs_fake")] == [0]


def test_real_images_follow_the_requested_classes_and_a_resumed_run_writes_none(
    tmp_path: Path,
) -> None:
    labels = torch.arange(40) % 4
    images = (
        torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2)
    )  # pixel = index
    datamodule = SimpleNamespace(train_set=ImageSet(images, labels, list("abcd")), train_files=None)
    classes = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    picked = real_images(datamodule, classes, 8, seed=0)[:, 0, 0, 0].long()
    assert torch.equal(labels[picked], classes) and len(set(picked.tolist())) == 8  # no repeats
    unconditional = real_images(datamodule, None, 5, seed=0)[:, 0, 0, 0]
    assert len(set(unconditional.tolist())) == 5
    assert torch.equal(unconditional, real_images(datamodule, None, 5, seed=0)[:, 0, 0, 0])
    assert real_images(datamodule, None, 64, seed=0).shape == (64, 1, 2, 2)  # 40 images, 64 places
    callback = RealVsFake(dirpath=str(tmp_path))
    callback.on_train_start(SimpleNamespace(global_step=5), None)
    assert not list(tmp_path.iterdir())
