"""The LightningModule: the adversarial step, top to bottom on one screen.

Manual optimization: per batch one D update; every ``n_critic``-th D update is followed by one
G update. Lightning's ``global_step`` counts every ``optimizer.step()``; here D's steps are kept
out of the count, so ``global_step`` == number of G updates and ``trainer.max_steps`` means G steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import attached_trainer, logger_writes, step_not_counted
from gan_lab.models.augment import DiffAugment
from gan_lab.models.compatibility import check_compatible
from gan_lab.models.ema import GeneratorEMA
from gan_lab.models.losses import AdversarialLoss, NonSaturatingLoss, discriminator_score
from gan_lab.models.regularizers import DiscriminatorRegularizer
from gan_lab.training import speed_options
from gan_lab.training.grad_scale import loss_scale
from gan_lab.training.noise import rank_noise
from gan_lab.training.step_stats import StepStats

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
LR_SCHEDULES = ("constant", "linear")


class GANModule(L.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        loss: AdversarialLoss | None = None,
        n_critic: int = 1,
        grad_clip_g: float | None = None,
        grad_clip_d: float | None = None,
        lr_schedule: str = "constant",
        ema_decay: float | None = 0.999,
        ema_start_step: int = 0,
        num_fixed_samples: int = 64,
        fixed_noise_seed: int = 0,
        regularizer: DiscriminatorRegularizer | None = None,
        augment: DiffAugment | None = None,
        noise_seed: int | None = None,
        channels_last: bool = False,
        compile_networks: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(n_critic, int) or isinstance(n_critic, bool) or n_critic < 1:
            raise ConfigError(
                "model.n_critic", n_critic, "must be an integer >= 1 (D updates per G update)"
            )
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                "model.lr_schedule", lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}"
            )
        for key, clip in (("model.grad_clip_g", grad_clip_g), ("model.grad_clip_d", grad_clip_d)):
            if clip is not None and (not isinstance(clip, int | float) or clip <= 0):
                raise ConfigError(key, clip, "must be > 0, or null to disable clipping")
        self.loss = loss if loss is not None else NonSaturatingLoss()
        check_compatible(
            generator,
            discriminator,
            self.loss,
            penalized=regularizer is not None,
            compiled=compile_networks,
        )
        self.save_hyperparameters(
            ignore=[
                "generator",
                "discriminator",
                "optimizer_g",
                "optimizer_d",
                "loss",
                "regularizer",
                "augment",
            ],
            logger=False,
        )
        self.hparams["loss"] = (
            self.loss.name
        )  # what the run trained with, for readers of the checkpoint
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.optimizer_g_factory, self.optimizer_d_factory = optimizer_g, optimizer_d
        self.n_critic = n_critic
        self.regularizer, self.augment = regularizer, augment
        if channels_last:  # before the EMA copy, so the copy shares the layout
            speed_options.to_channels_last(generator, discriminator)
        self.ema = GeneratorEMA(generator, ema_decay, ema_start_step) if ema_decay else None
        if compile_networks:
            speed_options.compile_networks(generator, discriminator)
        self.latent_dim = int(generator.latent_dim)
        self.num_classes = int(getattr(generator, "num_classes", 0))
        noise = torch.Generator().manual_seed(fixed_noise_seed)
        self.register_buffer(
            "fixed_z", torch.randn(num_fixed_samples, self.latent_dim, generator=noise)
        )
        fixed_y = torch.arange(num_fixed_samples) * max(self.num_classes, 1) // num_fixed_samples
        self.register_buffer(
            "fixed_y", fixed_y.long()
        )  # one block of rows per class when conditional
        self.d_updates = 0  # D updates so far; survives checkpoints
        # this batch's losses and D scores (detached); logged only on the batches loggers write
        self.step_stats = StepStats()
        self.noise_seed = (
            noise_seed  # training noise stream (see models/noise.py); None: drawn in setup
        )

    # ---------------------------------------------------------------------------- sampling
    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator when there is one: its samples are what papers report."""
        return self.ema.module if self.ema is not None else self.generator

    def sample_noise(self, n: int) -> tuple[Tensor, Tensor | None]:
        z = torch.randn(n, self.latent_dim, device=self.device)
        y = (
            torch.randint(0, self.num_classes, (n,), device=self.device)
            if self.num_classes
            else None
        )
        return z, y

    def training_noise(self, n: int, stream: str) -> tuple[Tensor, Tensor | None]:
        """This rank's ``n`` rows of the step's global noise batch: distinct per rank, same for any world size."""
        assert self.noise_seed is not None, "setup() draws the noise seed"
        counter = self.d_updates if stream == "d" else self.global_step
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size)
            if attached_trainer(self)
            else (0, 1)
        )
        return rank_noise(
            seed=self.noise_seed,
            stream=stream,
            counter=counter,
            per_rank=n,
            rank=rank,
            world_size=world,
            latent_dim=self.latent_dim,
            num_classes=self.num_classes,
            device=self.device,
        )

    def setup(self, stage: str) -> None:
        if self.noise_seed is None:  # one random seed for all ranks, kept in checkpoints
            self.noise_seed = int(
                self.trainer.strategy.broadcast(int(torch.randint(2**62, ()).item()))
            )
        if self.trainer.global_rank > 0:  # augmentations (flips, DiffAugment) differ per rank
            torch.manual_seed(torch.initial_seed() + self.trainer.global_rank)

    @torch.no_grad()
    def generate(self, z: Tensor, y: Tensor | None = None, use_ema: bool = True) -> Tensor:
        """Images in [-1, 1] from the sampling generator in eval mode (BN uses running stats)."""
        net = self.sampling_generator if use_ema else self.generator
        was_training = net.training
        net.eval()
        try:
            return net(z, y if self.num_classes else None).float()
        finally:
            net.train(was_training)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.generate(z, y)

    # ---------------------------------------------------------------------------- training
    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_g_factory(self.generator.parameters())
        opt_d = self.optimizer_d_factory(self.discriminator.parameters())
        if self.hparams.lr_schedule == "constant":
            return [opt_g, opt_d]
        total = self.trainer.max_steps
        if total is None or total <= 0:
            raise ConfigError(
                "trainer.max_steps",
                total,
                "model.lr_schedule=linear needs a positive trainer.max_steps",
            )
        decay = lambda g_step: max(0.0, 1.0 - g_step / total)  # noqa: E731
        return [opt_g, opt_d], [LambdaLR(opt_g, decay), LambdaLR(opt_d, decay)]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, labels = batch
        opt_g, opt_d = self.optimizers()
        y_real = labels if self.num_classes else None
        # scalars reach the loggers on one batch in trainer.log_every_n_steps: log (and compute
        # diagnostic gradient norms) only then
        logged = logger_writes(attached_trainer(self))

        # --- discriminator update (G frozen; fakes carry no graph back into G)
        with self.toggled_optimizer(opt_d):
            z, y_fake = self.training_noise(real.shape[0], "d")
            with torch.no_grad():
                fake = self.generator(z, y_fake)
            real_in, fake_in = self._augmented(real), self._augmented(fake)
            real_logits = self.discriminator(real_in, y_real)
            fake_logits = self.discriminator(fake_in, y_fake)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            penalty = self._d_regularization(real_in, fake_in, y_real, logged)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss + penalty)
            d_grad_norm = self._clip_and_measure(
                self.discriminator, self.hparams.grad_clip_d, logged
            )
            with step_not_counted(opt_d, self.trainer):  # only G steps count
                opt_d.step()
        self.d_updates += 1
        d_stats = {
            "loss/d": d_loss.detach(),
            "D(x)": discriminator_score(real_logits, self.loss),
            "D(G(z))": discriminator_score(fake_logits, self.loss),
        }
        self.step_stats.update(d_stats)
        if logged:
            self.log_dict({**d_stats, "grad_norm/d": d_grad_norm})
        if self.d_updates % self.n_critic:
            return

        # --- generator update (D frozen, but gradients flow through it to G)
        with self.toggled_optimizer(opt_g):
            z, y_fake = self.training_noise(real.shape[0], "g")
            fake_logits = self.discriminator(self._augmented(self.generator(z, y_fake)), y_fake)
            if self.loss.relativistic:  # G's loss compares fakes with D's view of this real batch
                real_logits = self.discriminator(self._augmented(real), y_real)
                g_loss = self.loss.g_loss(fake_logits, real_logits)
            else:
                g_loss = self.loss.g_loss(fake_logits)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            g_grad_norm = self._clip_and_measure(self.generator, self.hparams.grad_clip_g, logged)
            opt_g.step()
        for scheduler in self._schedulers():
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.generator, self.global_step)
        self.step_stats["loss/g"] = g_loss.detach()
        if logged:
            self.log("g_step", float(self.global_step), prog_bar=True)
            self.log_dict(
                {
                    "loss/g": g_loss.detach(),
                    "grad_norm/g": g_grad_norm,
                    "lr/g": opt_g.param_groups[0]["lr"],
                    "lr/d": opt_d.param_groups[0]["lr"],
                }
            )

    # ---------------------------------------------------------------------------- helpers
    def _augmented(self, images: Tensor) -> Tensor:
        """DiffAugment when configured: D sees augmented reals and fakes, in both steps."""
        return self.augment(images) if self.augment is not None else images

    def _d_regularization(
        self, real: Tensor, fake: Tensor, y: Tensor | None, logged: bool
    ) -> Tensor:
        """Gradient penalty / R1 on D's (augmented) inputs; logs each term. Zero when unset.

        Conditional GP scores the interpolates under the real labels.
        """
        if self.regularizer is None:
            return torch.zeros((), device=real.device)
        penalty, terms = self.regularizer(self.discriminator, real, fake, y, self.d_updates)
        if logged:
            self.log_dict(terms)
        return penalty

    def _schedulers(self) -> list[LRScheduler]:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def _clip_and_measure(self, net: nn.Module, max_norm: float | None, logged: bool) -> Tensor:
        """Total L2 gradient norm before clipping; clips in place when ``max_norm`` is set.

        Without clipping the norm is only a logged diagnostic, so it is computed only when logged.
        """
        if max_norm is None and not logged:
            return torch.zeros(())
        params = [p for p in net.parameters() if p.grad is not None]
        if not params:
            return torch.zeros(())
        # under fp16 the gradients here still carry the GradScaler's loss scale (Lightning unscales
        # inside optimizer.step(), fused optimizers in their kernel), so limit and norm scale too
        scale = loss_scale(attached_trainer(self))
        limit = max_norm * scale if max_norm is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, limit, error_if_nonfinite=False)
        return (norm / scale).detach()

    def on_train_end(self) -> None:
        # the final step, also when the last batch was not a logged one: train.py reports it, and
        # spawned DDP ranks return only callback_metrics to the launching process
        self.trainer.callback_metrics["g_step"] = torch.tensor(float(self.global_step))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab"] = {"d_updates": self.d_updates, "noise_seed": self.noise_seed}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.d_updates = int(checkpoint.get("gan_lab", {}).get("d_updates", 0))
        self.noise_seed = checkpoint.get("gan_lab", {}).get("noise_seed", self.noise_seed)
