"""A new loss or dataset is one class + one YAML: defined here at test time, outside the package.

The class lives in a temporary module on ``sys.path``, its YAML in a temporary config dir put on
Hydra's search path (``hydra.searchpath=[file://...]``); the normal training entry trains it.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import hydra
import pytest

from gan_lab.train import train
from tests import zoo
from tests.conftest import TINY_MLP_GAN

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

THROWAWAY_MODULE = '''
import torch
import torch.nn.functional as F

from gan_lab.data.sources import DataSource, ImageSet
from gan_lab.models.losses import AdversarialLoss

CALLS = []  # (loss name, real_logits shape or None) per G-loss call


class ThrowawayLoss(AdversarialLoss):
    """A logistic pair under another name, recording what the G step passes."""

    outputs_probability = True

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()

    def g_loss(self, fake_logits, real_logits=None):
        CALLS.append((self.name, None if real_logits is None else tuple(real_logits.shape)))
        return F.softplus(-fake_logits.float()).mean()


class Stripes(DataSource):
    """Vertical stripes, the label is the stripe period: a dataset made of one class."""

    cacheable = False

    def __init__(self, num_samples=32, name=None):
        super().__init__(name)
        self.num_samples = num_samples

    def load(self, split, root, image_size, channels):
        labels = torch.arange(self.num_samples) % 4
        columns = torch.arange(image_size)
        stripes = (columns[None, :] // (labels[:, None] + 1)) % 2 * 255
        images = stripes[:, None, None, :].expand(-1, channels, image_size, -1)
        return ImageSet(images.to(torch.uint8).contiguous(), labels, [f"period_{k + 1}" for k in range(4)])


class ThrowawayPairedLoss(ThrowawayLoss):
    """Relativistic pairing (Jolicoeur-Martineau 2019): G's loss needs D's real logits too."""

    relativistic = True
    bounded_below = False

    def d_loss(self, real_logits, fake_logits):
        return F.softplus(fake_logits.float() - real_logits.float()).mean()

    def g_loss(self, fake_logits, real_logits=None):
        CALLS.append((self.name, None if real_logits is None else tuple(real_logits.shape)))
        return F.softplus(real_logits.float() - fake_logits.float()).mean()
'''


@pytest.fixture
def throwaway_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module with two loss classes, and a config dir with one YAML per class."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "throwaway_losses.py").write_text(THROWAWAY_MODULE)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.delitem(sys.modules, "throwaway_losses", raising=False)
    configs = tmp_path / "extra_configs"
    (configs / "model" / "loss").mkdir(parents=True)
    for name, cls in (("throwaway", "ThrowawayLoss"), ("throwaway_paired", "ThrowawayPairedLoss")):
        (configs / "model" / "loss" / f"{name}.yaml").write_text(
            textwrap.dedent(f"""\
                _target_: throwaway_losses.{cls}
                name: {name}
            """)
        )
    (configs / "data" / "source").mkdir(parents=True)
    (configs / "data" / "source" / "stripes.yaml").write_text(
        "_target_: throwaway_losses.Stripes\nnum_samples: 48\n"
    )
    yield configs
    sys.modules.pop("throwaway_losses", None)


@pytest.mark.parametrize(("loss", "real_shape"), [("throwaway", None), ("throwaway_paired", (16,))])
def test_a_loss_added_outside_the_package_trains_2_steps(
    loss: str, real_shape: tuple[int, ...] | None, throwaway_zoo: Path, make_cfg
) -> None:
    cfg = make_cfg(
        *TINY_MLP_GAN,
        f"hydra.searchpath=[file://{throwaway_zoo}]",
        f"model/loss={loss}",
        "trainer.max_steps=2",
        "~callbacks.model_checkpoint",
        "~logger",
        "+trainer.enable_checkpointing=false",
    )
    metrics = train(cfg)
    import throwaway_losses

    assert metrics["g_step"] == 2
    assert math.isfinite(metrics["loss/d"]) and math.isfinite(metrics["loss/g"])
    # one G-loss call per G step; D's logits on the real batch only for the relativistic loss
    assert [(loss, real_shape)] * 2 == throwaway_losses.CALLS


def test_the_zoo_machinery_sees_a_loss_on_the_search_path(throwaway_zoo: Path) -> None:
    assert {"throwaway", "throwaway_paired"} <= set(zoo.names("loss", throwaway_zoo))
    built = zoo.build_loss("throwaway_paired", throwaway_zoo)
    assert built.name == "throwaway_paired" and built.relativistic and not built.bounded_below


def test_a_dataset_added_outside_the_package_trains_2_steps(throwaway_zoo: Path, make_cfg) -> None:
    overrides = [o for o in TINY_MLP_GAN if not o.startswith("data/source")]
    overrides = [o for o in overrides if "num_samples" not in o]
    cfg = make_cfg(
        *overrides,
        f"hydra.searchpath=[file://{throwaway_zoo}]",
        "data/source=stripes",
        "data.num_classes=4",
        "trainer.max_steps=2",
        "~callbacks.model_checkpoint",
        "~logger",
        "+trainer.enable_checkpointing=false",
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    assert datamodule.source == "stripes" and len(datamodule.load_split("train")) == 48
    assert datamodule.class_names == ["period_1", "period_2", "period_3", "period_4"]
    metrics = train(cfg)
    assert metrics["g_step"] == 2 and math.isfinite(metrics["loss/d"])
