"""DDP proved on CPU: 2 gloo processes give what 1 process gives, write each file once, resume.

The equivalence needs a generator without batch statistics (BatchNorm normalises each rank's
share of the batch, so with it 2 x B/2 is a different model than 1 x B). The MLP generator's
BatchNorm layers are swapped for identities here; the discriminator has none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from gan_lab.data.batch_sampler import EpochBatchSampler
from gan_lab.data.transforms import uint8_to_float
from gan_lab.distributed import check_ddp_launch, is_rank_zero
from gan_lab.errors import ConfigError
from gan_lab.train import train
from gan_lab.trainer_args import trainer_config
from gan_lab.training.noise import rank_noise
from tests.conftest import compose_train_config
from tests.weights import strip_batchnorm, weights

TINY = (
    "data/source=synthetic",
    "data.image_size=8",
    "data.channels=1",
    "data.source.num_samples=64",
    "data.batch_size=8",
    "model.generator.latent_dim=8",
    "model.generator.width=4",
    "model.discriminator.width=8",
    "model.n_critic=2",
    "model.ema_decay=0.9",
    "model.ema_start_step=0",
    "model.num_fixed_samples=4",
    "seed=3",
)
G_STEPS = 3  # with n_critic=2: 6 D updates, 3 G updates, all inside the first epoch
# trainer=ddp_cpu with forked instead of spawned processes: the same DDP code on the same gloo
# backend, without each process importing torch and Lightning again (~10 s apiece on a busy
# 2-core machine). What spawning adds, pickling every object for the new processes, is checked
# below; the spawned run itself is the slow multirun test in test_sweeps.py.
DDP_CPU = ("trainer=ddp_cpu", "trainer.strategy.start_method=fork")
# the same, with one DDP wrapper per network (trainer=ddp_gan on GPUs)
PER_NETWORK = (
    "trainer.strategy._target_=gan_lab.training.ddp_per_network.PerNetworkDDPStrategy",
    "trainer.strategy.find_unused_parameters=false",
)
STRATEGIES = {"lightning_ddp": (), "per_network_ddp": PER_NETWORK}


# ------------------------------------------------------------------------------ noise
def test_each_rank_gets_its_slice_of_the_same_global_noise() -> None:
    common = {"seed": 7, "stream": "d", "counter": 5, "latent_dim": 3, "num_classes": 10}
    z1, y1 = rank_noise(per_rank=8, rank=0, world_size=1, **common)
    halves = [rank_noise(per_rank=4, rank=r, world_size=2, **common) for r in (0, 1)]
    assert torch.equal(torch.cat([z for z, _ in halves]), z1)
    assert torch.equal(torch.cat([y for _, y in halves]), y1)
    assert not torch.allclose(halves[0][0], halves[1][0])  # different noise per rank
    again, _ = rank_noise(per_rank=4, rank=1, world_size=2, **common)
    assert torch.equal(again, halves[1][0])  # reproducible
    other_step, _ = rank_noise(per_rank=8, rank=0, world_size=1, **{**common, "counter": 6})
    other_stream, _ = rank_noise(per_rank=8, rank=0, world_size=1, **{**common, "stream": "g"})
    assert not torch.allclose(other_step, z1) and not torch.allclose(other_stream, z1)


# ------------------------------------------------------------------------------ config checks
def test_global_batch_must_divide_by_world_size(make_cfg: Callable[..., DictConfig]) -> None:
    from gan_lab.preflight import validate_config

    with pytest.raises(ConfigError, match=r"data\.batch_size=15 .*world size 2"):
        validate_config(make_cfg("trainer=ddp_cpu", "data.batch_size=15"))


def test_multirun_refuses_ddp_that_reruns_the_script(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("trainer=ddp", "trainer.devices=2")
    with pytest.raises(
        ConfigError, match=r"trainer\.strategy\.start_method='popen'.*start_method=spawn"
    ):
        check_ddp_launch(cfg, multirun=True, env={})
    check_ddp_launch(cfg, multirun=False, env={})  # a single run may re-run the script
    check_ddp_launch(cfg, multirun=True, env={"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "gan"})
    check_ddp_launch(make_cfg("trainer=ddp_cpu"), multirun=True, env={})  # spawn
    with pytest.raises(ConfigError, match=r"trainer\.strategy='ddp'.*trainer\.strategy=ddp_spawn"):
        check_ddp_launch(make_cfg("trainer=ddp", "trainer.strategy=ddp"), multirun=True, env={})


def test_only_rank_zero_writes_run_files() -> None:
    assert is_rank_zero({})
    assert not is_rank_zero({"LOCAL_RANK": "1"})
    assert not is_rank_zero({"SLURM_PROCID": "4", "LOCAL_RANK": "0"})  # node 1, first GPU


# ------------------------------------------------------------------------------ the proof
def _fit(cfg: DictConfig) -> L.LightningModule:
    """Fit ``G_STEPS`` generator steps; returns the module with rank 0's final weights."""
    L.seed_everything(cfg.seed)
    model = hydra.utils.instantiate(cfg.model)
    strip_batchnorm(model.generator)
    strip_batchnorm(model.ema)
    trainer = hydra.utils.instantiate(
        trainer_config(cfg),
        max_steps=G_STEPS,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=hydra.utils.instantiate(cfg.data))
    return model


def _plain_pytorch_reference(cfg: DictConfig) -> dict[str, torch.Tensor]:
    """The same k steps written out by hand: each optimizer steps on its own network's loss only."""
    L.seed_everything(cfg.seed)
    model = hydra.utils.instantiate(cfg.model)
    strip_batchnorm(model.generator)
    G, D, loss = model.generator, model.discriminator, model.loss
    opt_g = hydra.utils.instantiate(cfg.model.optimizer_g)(G.parameters())
    opt_d = hydra.utils.instantiate(cfg.model.optimizer_d)(D.parameters())
    data = hydra.utils.instantiate(cfg.data)
    data.setup()
    batch = cfg.data.batch_size
    noise = {
        "seed": cfg.seed,
        "per_rank": batch,
        "rank": 0,
        "world_size": 1,
        "latent_dim": G.latent_dim,
    }
    batches = list(EpochBatchSampler(len(data.train_set), batch, seed=data.seed))
    for d_updates, index in enumerate(batches[: G_STEPS * cfg.model.n_critic]):
        real = uint8_to_float(data.train_set.images[index])
        z, _ = rank_noise(stream="d", counter=d_updates, num_classes=0, **noise)
        with torch.no_grad():
            fake = G(z)
        opt_d.zero_grad()
        loss.d_loss(D(real), D(fake)).backward()
        opt_d.step()
        if (d_updates + 1) % cfg.model.n_critic:
            continue
        z, _ = rank_noise(
            stream="g", counter=(d_updates + 1) // cfg.model.n_critic - 1, num_classes=0, **noise
        )
        opt_g.zero_grad()
        loss.g_loss(D(G(z))).backward()
        opt_g.step()
    return {
        **{f"generator.{k}": v for k, v in weights(G).items()},
        **{f"discriminator.{k}": v for k, v in weights(D).items()},
    }


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_two_gloo_processes_train_exactly_like_one(
    make_cfg: Callable[..., DictConfig], strategy: str
) -> None:
    single = weights(_fit(make_cfg(*TINY, "trainer=cpu")))
    ddp = weights(_fit(make_cfg(*TINY, *DDP_CPU, *STRATEGIES[strategy])))
    reference = _plain_pytorch_reference(make_cfg(*TINY, "trainer=cpu"))

    trained = [k for k in single if k.startswith(("generator.", "discriminator.", "ema."))]
    assert len(trained) >= 12
    L.seed_everything(3)  # the seed in TINY: the same initial weights as the runs
    initial = weights(hydra.utils.instantiate(make_cfg(*TINY).model))
    moved = [k for k in trained if k in initial and not torch.allclose(initial[k], single[k])]
    assert len(moved) >= 10, "training must move the weights for the comparison to mean anything"
    for key in trained:
        torch.testing.assert_close(ddp[key], single[key], atol=1e-5, rtol=1e-4, msg=key)
    for key, value in reference.items():  # no gradient of one network leaks into the other's step
        torch.testing.assert_close(single[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_two_gloo_processes_accumulating_micro_batches_train_like_one_process_without(
    make_cfg: Callable[..., DictConfig],
) -> None:
    """model.accumulate under DDP: each rank splits its half of the batch; the update is unchanged."""
    single = weights(_fit(make_cfg(*TINY, "trainer=cpu")))
    ddp = weights(_fit(make_cfg(*TINY, *DDP_CPU, "model.accumulate=2")))
    for key in [k for k in single if k.startswith(("generator.", "discriminator.", "ema."))]:
        torch.testing.assert_close(ddp[key], single[key], atol=1e-5, rtol=1e-4, msg=key)


def test_kimg_under_two_processes_counts_the_global_batch_with_n_critic_5(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Each rank sees 4 of the 8 images per D update; kimg (and a kimg budget) counts all 8."""
    tiny = [o for o in TINY if o != "model.n_critic=2"]
    budget = ("model.n_critic=5", "trainer.max_steps=null", "trainer.max_kimg=0.12")  # 120 / 40
    metrics = train(make_cfg(*tiny, *DDP_CPU, *budget))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["progress"] == {"g_step": 3, "d_updates": 15, "images_shown": 120, "kimg": 0.12}
    assert metrics["kimg"] == pytest.approx(0.12)


# ------------------------------------------------------------------------------ files and resume
def test_ddp_cpu_run_writes_each_file_once_and_resumes(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    every = (
        "callbacks.model_checkpoint.every_n_train_steps=25",
        "callbacks.sample_grid.every_n_steps=25",
    )
    tiny = [o for o in TINY if o != "model.n_critic=2"]
    cfg = make_cfg(*tiny, *every, *DDP_CPU, "trainer.max_steps=50")
    run_dir = Path(cfg.paths.output_dir)
    metrics = train(cfg)
    assert metrics["g_step"] == 50  # rank 0's metrics come back to the launching process

    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.ckpt",
        "step_0000025.ckpt",
        "step_0000050.ckpt",
    ]
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "real_vs_fake.png",  # once, at step 0
        "step_0000025.png",
        "step_0000050.png",
    ]
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 50 and first["gan_lab"]["d_updates"] == 50

    # 50 -> 60 resumed equals 0 -> 60 straight (a checkpoint at step 60 in both runs)
    at_60 = ("callbacks.model_checkpoint.every_n_train_steps=30", "trainer.max_steps=60")
    resumed = train(make_cfg(*tiny, *DDP_CPU, *at_60, "ckpt_path=last"))
    assert resumed["g_step"] == 60
    train(compose_train_config([*tiny, *DDP_CPU, *at_60], tmp_path / "straight"))
    last = torch.load(run_dir / "checkpoints" / "step_0000060.ckpt", weights_only=True)
    straight = torch.load(tmp_path / "straight/checkpoints/step_0000060.ckpt", weights_only=True)
    assert last["gan_lab"]["d_updates"] == straight["gan_lab"]["d_updates"] == 60
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][key], value, atol=1e-6, rtol=1e-5, msg=key)
    g_first, g_last = (ckpt["state_dict"]["generator.net.0.weight"] for ckpt in (first, last))
    assert not torch.equal(g_first, g_last)  # the resumed run did train


def test_per_network_ddp_wraps_g_and_d_and_leaves_the_module_and_its_state_dict_alone(
    make_cfg: Callable[..., DictConfig],
) -> None:
    from gan_lab.training.ddp_per_network import PerNetworkDDPStrategy

    model = hydra.utils.instantiate(make_cfg(*TINY).model)
    keys = list(model.state_dict())
    model.wrap_networks(lambda net: nn.Sequential(net))
    assert set(model._wrapped) == {"generator", "discriminator"}
    assert model._wrapped["generator"][0] is model.generator
    assert list(model.state_dict()) == keys  # checkpoints keep their names
    model.wrap_networks(None)
    assert model._wrapped == {}
    with pytest.raises(ConfigError, match="find_unused_parameters=True"):
        PerNetworkDDPStrategy(find_unused_parameters=True)


def test_everything_a_spawned_process_receives_pickles(make_cfg: Callable[..., DictConfig]) -> None:
    """trainer=ddp_cpu spawns its processes: model, data, callbacks and loggers travel by pickle."""
    from multiprocessing.reduction import ForkingPickler

    from gan_lab.utils import instantiate_callbacks, instantiate_loggers

    cfg = make_cfg(*TINY, "trainer=ddp_cpu", "hparams_search=mnist_optuna")
    assert cfg.trainer.strategy.start_method == "spawn"
    objects = [
        hydra.utils.instantiate(cfg.model),
        hydra.utils.instantiate(cfg.data),
        *instantiate_callbacks(cfg.callbacks),
        *instantiate_loggers(cfg.logger),
    ]
    for obj in objects:
        ForkingPickler.dumps(obj)
