"""Values that no constructor sees before data loads: ranges, combinations across groups,
world size and launch mode, and the networks' image geometry against the data's.

Arguments a constructor owns are checked there, not here (``GANModule``: ``n_critic``,
``lr_schedule``, ``grad_clip_*``; the callbacks: their policies and periods); ``gan-train``
instantiates them before anything is written. What stays here either spans two groups or
belongs to an object built only once training starts (optimizers, the Lightning Trainer).
"""

from __future__ import annotations

import re

from omegaconf import DictConfig

from gan_lab.distributed import check_ddp_launch
from gan_lab.errors import ConfigError
from gan_lab.precision_auto import AUTO as AUTO_PRECISION
from gan_lab.preflight.keys import POSITIVE_INT, check, get, is_int, is_number
from gan_lab.run_length import resolved_max_steps

PRECISIONS = (AUTO_PRECISION, "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# Trainer options that manual optimization ignores, and what to set instead
UNSUPPORTED_TRAINER_KEYS = {
    "trainer.gradient_clip_val": "set model.grad_clip_g / model.grad_clip_d instead",
    "trainer.accumulate_grad_batches": "set model.accumulate=N (micro-batches per D and G update) instead",
}


def check_data(cfg: DictConfig) -> None:
    check(cfg, "data.batch_size", lambda v: is_int(v) and v > 0, "must be a positive integer (the global batch)")  # fmt: skip
    check(cfg, "data.image_size", lambda v: is_int(v) and v >= 8, "must be an integer >= 8 (pixels per side)")  # fmt: skip
    check(cfg, "data.channels", lambda v: v in (1, 3), "must be 1 (grey) or 3 (RGB)")
    check(cfg, "data.num_workers", lambda v: is_int(v) and v >= 0, "must be an integer >= 0")
    check(cfg, "data.heldout_fraction", lambda v: is_number(v) and 0 < v < 1, "must be in (0, 1), e.g. 0.1")  # fmt: skip
    check(cfg, "data.source.num_samples", *POSITIVE_INT)
    for key in ("data.hflip", "data.pin_memory"):
        check(cfg, key, lambda v: isinstance(v, bool), "must be true or false")


def check_model(cfg: DictConfig) -> None:
    """The optimizers are partials built at fit time, and EMA is read after the first step."""
    check(cfg, "seed", is_int, "must be an integer, or null for a random seed")
    for opt in ("optimizer_g", "optimizer_d"):
        check(cfg, f"model.{opt}.lr", lambda v: is_number(v) and v > 0, "must be a positive number, e.g. 2e-4")  # fmt: skip
        check(
            cfg,
            f"model.{opt}.betas",
            lambda v: len(v) == 2 and all(is_number(b) and 0 <= b < 1 for b in v),
            "must be two numbers in [0, 1), e.g. [0.5, 0.999]",
        )
        check(cfg, f"model.{opt}.weight_decay", lambda v: is_number(v) and v >= 0, "must be a number >= 0")  # fmt: skip
    check(cfg, "model.ema_decay", lambda v: is_number(v) and 0 < v < 1, "must be in (0, 1), e.g. 0.999, or null")  # fmt: skip
    check(cfg, "model.ema_start_step", lambda v: is_int(v) and v >= 0, "must be an integer >= 0")
    check(cfg, "model.ema_rampup", lambda v: is_number(v) and 0 < v <= 1, "must be in (0, 1], e.g. 0.05, or null")  # fmt: skip
    check(cfg, "model.num_fixed_samples", *POSITIVE_INT)


def check_trainer(cfg: DictConfig) -> None:
    max_steps = resolved_max_steps(cfg)  # trainer.max_kimg converted; both set must agree
    if not (is_int(max_steps) and (max_steps > 0 or max_steps == -1)):
        raise ConfigError(
            "trainer.max_steps",
            max_steps,
            "must be a positive number of generator steps (or -1 with trainer.max_epochs), "
            "or null with a trainer.max_kimg budget",
        )
    check(cfg, "trainer.precision", lambda v: str(v) in PRECISIONS, f"choose one of {', '.join(PRECISIONS)}")  # fmt: skip
    check(cfg, "trainer.accelerator", lambda v: v in ACCELERATORS, f"choose one of {', '.join(ACCELERATORS)}")  # fmt: skip
    check(cfg, "trainer.num_nodes", *POSITIVE_INT)
    check(
        cfg,
        "trainer.devices",
        lambda v: (
            v == "auto"
            or (is_int(v) and (v >= 1 or v == -1))
            or not isinstance(v, str | int | float)
        ),
        'must be a number of devices >= 1, -1 (all), "auto" or a list of device ids',
    )
    check(cfg, "trainer.log_every_n_steps", *POSITIVE_INT)
    check(cfg, "trainer.deterministic", lambda v: isinstance(v, bool), "must be true or false")
    for key, fix in UNSUPPORTED_TRAINER_KEYS.items():
        value = get(cfg, key)
        if value not in (None, 1, 0) or (key.endswith("clip_val") and value not in (None, 0)):
            raise ConfigError(key, value, f"not supported with the GAN's manual optimization; {fix}")  # fmt: skip


def check_combinations(cfg: DictConfig) -> None:
    """Values that are fine alone but not together."""
    max_steps, max_epochs = resolved_max_steps(cfg), get(cfg, "trainer.max_epochs")
    max_time = get(cfg, "trainer.max_time")
    if max_time is not None and not re.fullmatch(r"\d+:\d+:\d+:\d+", str(max_time)):
        raise ConfigError(
            "trainer.max_time", max_time, 'a wall-clock limit "DD:HH:MM:SS", e.g. 00:12:00:00'
        )
    if max_steps == -1 and max_epochs in (None, -1) and max_time is None:
        raise ConfigError(
            "trainer.max_steps",
            max_steps,
            "with trainer.max_epochs=-1 the run never ends; set one of them (or trainer.max_time)",
        )
    if get(cfg, "model.lr_schedule") == "linear" and max_steps == -1:
        raise ConfigError(
            "model.lr_schedule", "linear", "decays to 0 at trainer.max_steps, so it needs trainer.max_steps > 0"
        )  # fmt: skip
    precision, accelerator = str(get(cfg, "trainer.precision")), get(cfg, "trainer.accelerator")
    if precision.startswith("16") and accelerator == "cpu":
        raise ConfigError(
            "trainer.precision", precision, "fp16 needs a GPU; on CPU use bf16-mixed or 32-true"
        )
    batch, size = get(cfg, "data.batch_size"), get(cfg, "data.source.num_samples")
    if is_int(batch) and is_int(size) and size < batch:  # a source that makes its images
        raise ConfigError(
            "data.source.num_samples", size, f"is smaller than one batch (data.batch_size={batch})"
        )


def check_networks_match_data(cfg: DictConfig) -> None:
    """Networks read size and channels from data.*; a hand override that disagrees is a mistake."""
    for net in ("generator", "discriminator"):
        for field in ("image_size", "channels"):
            mine, data = get(cfg, f"model.{net}.{field}"), get(cfg, f"data.{field}")
            if mine is not None and data is not None and mine != data:
                raise ConfigError(
                    f"model.{net}.{field}",
                    mine,
                    f"must equal data.{field}={data!r} (the images the {net} sees); drop the override "
                    f"or set data.{field}={mine!r}",
                )


def check_world(cfg: DictConfig) -> None:
    """The global batch splits evenly over the ranks the config asks for; the launch can start."""
    devices, nodes = get(cfg, "trainer.devices"), get(cfg, "trainer.num_nodes")
    batch = get(cfg, "data.batch_size")
    if is_int(devices) and is_int(nodes) and is_int(batch) and devices > 0:
        world = devices * nodes
        if batch % world:
            raise ConfigError(
                "data.batch_size",
                batch,
                f"the global batch must divide by world size {world} (trainer.devices={devices} x "
                f"trainer.num_nodes={nodes}); use a multiple of {world}",
            )
        micro = get(cfg, "model.accumulate")
        if is_int(micro) and micro > 1 and (batch // world) % micro:
            raise ConfigError(
                "model.accumulate",
                micro,
                f"must divide each process's batch ({batch} / {world} processes = {batch // world} "
                "images) into equal micro-batches; pick a divisor of it or change data.batch_size",
            )
    check_ddp_launch(cfg)
