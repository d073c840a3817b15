"""trainer.max_kimg: a run's length in thousands of real images shown to D, converted to G steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError
from gan_lab.preflight import validate_config
from gan_lab.run_length import g_steps_for_kimg
from gan_lab.train import train
from gan_lab.trainer_args import trainer_config
from tests.conftest import TINY_MLP_GAN


@pytest.mark.parametrize(
    ("kimg", "batch", "n_critic", "steps"),
    [
        (1000, 64, 1, 15625),
        (500, 64, 1, 7813),
        (0.4, 16, 5, 5),
        (0.41, 16, 5, 6),
        (3000, 512, 1, 5860),
    ],
)
def test_kimg_converts_to_the_fewest_g_steps_that_show_that_many_images(
    kimg: float, batch: int, n_critic: int, steps: int
) -> None:
    assert g_steps_for_kimg(kimg, batch, n_critic) == steps


def test_a_kimg_budget_with_n_critic_5_shows_d_exactly_that_many_images(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, one_cpu_thread: None
) -> None:
    # batch 16 x n_critic 5 = 80 real images per G step: 0.4 kimg is 5 G steps, 25 D updates
    cfg = make_cfg(
        *TINY_MLP_GAN, "model.n_critic=5", "trainer.max_steps=null", "trainer.max_kimg=0.4"
    )
    assert trainer_config(cfg).max_steps == 5 and "max_kimg" not in trainer_config(cfg)
    metrics = train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["progress"] == {"g_step": 5, "d_updates": 25, "images_shown": 400, "kimg": 0.4}
    assert metrics["kimg"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("overrides", "key", "says"),
    [
        (("trainer.max_kimg=0.4",), "trainer.max_steps", "trainer.max_steps=null"),  # 10000 != 25
        (("trainer.max_steps=null", "trainer.max_kimg=-1"), "trainer.max_kimg", "positive"),
        (("trainer.max_steps=null",), "trainer.max_steps", "trainer.max_kimg"),
    ],
)
def test_disagreeing_or_missing_budgets_are_one_line_errors(
    make_cfg: Callable[..., DictConfig], overrides: tuple[str, ...], key: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        validate_config(make_cfg(*TINY_MLP_GAN, *overrides))
    assert says in str(err.value) and "\n" not in str(err.value)


def test_max_steps_equal_to_the_converted_budget_is_accepted(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(*TINY_MLP_GAN, "trainer.max_steps=25", "trainer.max_kimg=0.4")  # 0.4k / 16
    validate_config(cfg)
    assert trainer_config(cfg).max_steps == 25
