"""Under DDP, ADA's p and LeCam's anchors are the same on every rank, and equal to one process
seeing the whole global batch: 2 forked gloo processes, each given its half of the logits."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gan_lab.models.ada import AdaptiveAugment
from gan_lab.models.lecam import LeCamRegularizer
from gan_lab.train import train
from tests.conftest import compose_train_config
from tests.test_ddp import DDP_CPU, TINY

STEPS, BATCH = 18, 8


def _global_logits(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch's real and fake logits of D step ``step`` (the same on every rank)."""
    g = torch.Generator().manual_seed(step)
    sure = torch.randn(BATCH // 2, generator=g) + 2.0  # rank 0's half: D is sure of the reals
    unsure = torch.randn(BATCH // 2, generator=g) - 0.3  # rank 1's half: it is not
    return torch.cat([sure, unsure]), torch.randn(BATCH, generator=g) - 0.5


def _run(rank: int, world: int, share: int | None = None) -> dict[str, torch.Tensor]:
    """ADA and LeCam state after STEPS D steps on this rank's ``share`` of each global batch."""
    ada = AdaptiveAugment(interval=3, speed_kimg=0.1, target=0.4)
    lecam = LeCamRegularizer(decay=0.9)
    per_rank = BATCH // world
    part = rank if share is None else share
    for step in range(STEPS):
        real, fake = (t[part * per_rank : (part + 1) * per_rank] for t in _global_logits(step))
        ada.observe(real)
        lecam.update_anchors(real, fake)
    return {**ada.state_dict(), **{f"lecam.{k}": v for k, v in lecam.state_dict().items()}}


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(_run(rank, world), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_p_and_anchors_are_identical_on_both_ranks_and_match_one_process(tmp_path: Path) -> None:
    mp.start_processes(
        _worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        start_method="fork",
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    single = _run(0, 1)
    alone = [float(_run(r, 2, share=r)["p"]) for r in (0, 1)]  # no process group: no all-reduce
    assert 0 < float(single["p"]) < 1 and float(single["p"]) not in alone, (single["p"], alone)
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        if key.startswith("lecam.anchor"):  # a mean of two half-batch means: rounding only
            assert torch.allclose(ranks[0][key], value, atol=1e-6), key
        else:  # sign counts are integers: exact
            assert torch.equal(ranks[0][key], value), key


class _SaveRankState(L.Callback):
    """Every rank writes its ADA and LeCam state at the end of training."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = {
            "p": pl_module.augment.p.clone(),
            "observed": pl_module.augment.observed.clone(),
            "anchor_real": pl_module.regularizer.anchor_real.clone(),
            "anchor_fake": pl_module.regularizer.anchor_fake.clone(),
        }
        torch.save(state, self.out_dir / f"rank{trainer.global_rank}.pt")


@pytest.mark.usefixtures("one_cpu_thread")
def test_training_under_ddp_keeps_every_rank_on_the_same_p_and_anchors(tmp_path: Path) -> None:
    import gan_lab.train as train_module

    overrides = [
        *DDP_CPU,
        *TINY,  # n_critic=2: 12 D steps in 6 G steps
        "model/augment=ada",
        "model.augment.interval=2",
        "model.augment.speed_kimg=1",
        "model.augment.initial_p=0.5",
        "model.augment.transforms=[xflip,translation,brightness,cutout]",
        "model/regularizer=lecam",
        "trainer.max_steps=6",
        "~callbacks.sample_grid",
        "~logger",
    ]
    cfg = compose_train_config(overrides, tmp_path / "run")
    original = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), _SaveRankState(tmp_path)]
    try:
        train(cfg)
    finally:
        train_module.instantiate_callbacks = original
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert int(ranks[0]["observed"]) == 12
    # 6 updates of +-16 images / 1000 from 0.5: p moved, and stayed clear of the clamps
    assert float(ranks[0]["p"]) != 0.5 and 0.4 < float(ranks[0]["p"]) < 0.6
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
