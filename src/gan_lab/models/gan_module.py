"""The LightningModule: the adversarial step, top to bottom on one screen.

Manual optimization: per batch one D update; every ``n_critic``-th D update is followed by one
G update. Lightning's ``global_step`` counts every ``optimizer.step()``; here D's steps are kept
out of the count, so ``global_step`` == number of G updates and ``trainer.max_steps`` means G steps.
Each update may run as ``accumulate`` micro-batches of one batch (training/accumulation.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from gan_lab.callbacks.progress import training_progress
from gan_lab.errors import ConfigError
from gan_lab.lightning_internals import (
    attached_trainer,
    count_step,
    logger_writes,
    step_not_counted,
)
from gan_lab.models.compatibility import check_compatible
from gan_lab.models.ema import GeneratorEMA
from gan_lab.models.losses import AdversarialLoss, NonSaturatingLoss, discriminator_score
from gan_lab.models.regularizers import DiscriminatorRegularizer
from gan_lab.training import speed_options
from gan_lab.training.accumulation import accumulate, loss_and_detached
from gan_lab.training.grad_clip import clip_and_measure
from gan_lab.training.lr_schedule import linear_decay
from gan_lab.training.noise import rank_noise
from gan_lab.training.step_stats import StepStats, write_scalars
from gan_lab.training.update_counting import CountsAppliedUpdates
from gan_lab.training.update_options import check_update_options

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
# constructor arguments that are parts (built objects), not hyperparameters
PARTS = (
    "generator",
    "discriminator",
    "optimizer_g",
    "optimizer_d",
    "loss",
    "regularizer",
    "augment",
)


class GANModule(CountsAppliedUpdates, L.LightningModule):
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
        lr_decay_start: float = 0.0,
        ema_decay: float | None = 0.999,
        ema_start_step: int = 0,
        ema_rampup: float | None = None,
        num_fixed_samples: int = 64,
        fixed_noise_seed: int = 0,
        regularizer: DiscriminatorRegularizer | None = None,
        augment: nn.Module | None = None,
        noise_seed: int | None = None,
        channels_last: bool = False,
        compile_networks: bool = False,
        compile_step: bool = False,
        accumulate: int = 1,
    ) -> None:
        super().__init__()
        speed_options.check_compile_options(compile_networks, compile_step)
        check_update_options(
            n_critic,
            accumulate,
            lr_schedule,
            lr_decay_start,
            (grad_clip_g, grad_clip_d),
            regularizer,
        )
        self.loss = loss if loss is not None else NonSaturatingLoss()
        check_compatible(
            generator,
            discriminator,
            self.loss,
            penalized=getattr(regularizer, "needs_input_gradients", regularizer is not None),
            compiled=compile_networks,
        )
        self.save_hyperparameters(ignore=list(PARTS), logger=False)
        self.hparams["loss"] = self.loss.name  # what the run trained with, for checkpoint readers
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.optimizer_g_factory, self.optimizer_d_factory = optimizer_g, optimizer_d
        self.n_critic, self.accumulate = n_critic, accumulate
        self.regularizer, self.augment = regularizer, augment
        if channels_last:  # before the EMA copy, so the copy shares the layout
            speed_options.to_channels_last(generator, discriminator)
        self.ema = (
            GeneratorEMA(generator, ema_decay, ema_start_step, ema_rampup) if ema_decay else None
        )
        if compile_networks:
            speed_options.compile_networks(generator, discriminator)
        self.latent_dim = int(generator.latent_dim)
        self.num_classes = int(getattr(generator, "num_classes", 0))
        noise = torch.Generator().manual_seed(fixed_noise_seed)
        self.register_buffer(
            "fixed_z", torch.randn(num_fixed_samples, self.latent_dim, generator=noise)
        )
        fixed_y = torch.arange(num_fixed_samples) * max(self.num_classes, 1) // num_fixed_samples
        self.register_buffer("fixed_y", fixed_y.long())  # a block of rows per class if conditional
        self.compile_step = compile_step
        self._step_functions: tuple[Callable[..., Any], ...] | None = None
        # per-network DDP wrappers (training/ddp_per_network.py); a plain dict, not submodules
        self._wrapped: dict[str, nn.Module] = {}
        self.d_updates = 0  # D updates so far; survives checkpoints
        self.skipped_updates: set[int] = set()  # see training/update_counting.py
        # this batch's losses and D scores (detached); logged only on the batches loggers write
        self.step_stats = StepStats()
        self.noise_seed = noise_seed  # training noise (training/noise.py); None: setup draws

    # ---------------------------------------------------------------------------- sampling
    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator when there is one: its samples are what papers report."""
        return self.ema.module if self.ema is not None else self.generator

    def sample_noise(self, n: int) -> tuple[Tensor, Tensor | None]:
        z = torch.randn(n, self.latent_dim, device=self.device)
        if not self.num_classes:
            return z, None
        return z, torch.randint(0, self.num_classes, (n,), device=self.device)

    def training_noise(self, n: int, stream: str) -> tuple[Tensor, Tensor | None]:
        """This rank's ``n`` rows of the step's global noise batch: distinct per rank, same for any world size."""
        assert self.noise_seed is not None, "setup() draws the noise seed"
        counter = self.d_updates if stream == "d" else self.global_step
        trainer = attached_trainer(self)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
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
        decay = linear_decay(total, self.hparams.lr_decay_start)
        return [opt_g, opt_d], [LambdaLR(opt_g, decay), LambdaLR(opt_d, decay)]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, labels = batch
        opt_g, opt_d = self.optimizers()
        y_real = labels if self.num_classes else None
        # scalars reach the loggers on one batch in trainer.log_every_n_steps: log (and compute
        # diagnostic gradient norms) only then
        trainer = attached_trainer(self)
        logged = logger_writes(trainer)

        # --- discriminator update (G frozen; fakes carry no graph back into G)
        if self._step_functions is None:  # compiled on first use (after a DDP spawn)
            self._step_functions = speed_options.step_functions(
                self._d_forward, self._g_forward, self.device, self.compile_step
            )
        d_forward, g_forward = self._step_functions
        with self.toggled_optimizer(opt_d):
            z, y_fake = self.training_noise(real.shape[0], "d")
            opt_d.zero_grad(set_to_none=True)  # micro-batches (model.accumulate) add up in .grad
            d_loss, real_logits, fake_logits, penalty_terms = accumulate(
                self.accumulate, partial(self._d_loss, d_forward), self.manual_backward,
                real, z, y_real, y_fake,
            )  # fmt: skip
            d_grad_norm = clip_and_measure(
                self.discriminator, self.hparams.grad_clip_d, logged, trainer
            )
            with step_not_counted(opt_d, self.trainer):  # only G steps count
                opt_d.step()
        self.d_updates += 1
        d_stats = {
            "loss/d": d_loss,  # detached by _d_loss
            "D(x)": discriminator_score(real_logits, self.loss),
            "D(G(z))": discriminator_score(fake_logits, self.loss),
        }
        if hasattr(self.augment, "observe"):  # ADA: D's real scores steer the augmentation
            d_stats.update(self.augment.observe(self.loss.real_margin(real_logits, fake_logits)))
        self.step_stats.update(d_stats)
        # a logged batch's scalars reach the loggers in one host transfer, at its end
        scalars = {**d_stats, "grad_norm/d": d_grad_norm, **penalty_terms} if logged else {}
        if self.d_updates % self.n_critic:
            write_scalars(trainer, scalars)
            return

        # --- generator update (D frozen, but gradients flow through it to G)
        with self.toggled_optimizer(opt_g):
            z, y_fake = self.training_noise(real.shape[0], "g")
            opt_g.zero_grad(set_to_none=True)
            g_loss = accumulate(
                self.accumulate, partial(loss_and_detached, g_forward), self.manual_backward,
                z, y_fake, real, y_real,
            )  # fmt: skip
            g_grad_norm = clip_and_measure(
                self.generator, self.hparams.grad_clip_g, logged, trainer
            )
            self.skipped_updates.discard(id(opt_g.optimizer))
            with step_not_counted(opt_g, self.trainer):
                opt_g.step()
        self.step_stats["loss/g"] = g_loss  # detached: loss_and_detached
        if id(opt_g.optimizer) in self.skipped_updates:
            write_scalars(trainer, scalars)
            return  # a dropped update is no G step: max_steps, schedules and the EMA wait for a real one
        count_step(opt_g)
        for scheduler in self._schedulers():
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.generator, self.global_step)
        if logged:
            scalars |= {"g_step": float(self.global_step), "loss/g": g_loss}
            scalars |= {"grad_norm/g": g_grad_norm, "lr/g": opt_g.param_groups[0]["lr"]}
            scalars["lr/d"] = opt_d.param_groups[0]["lr"]
            # real images shown to D so far, all ranks: the x axis of GAN papers' curves
            scalars["progress/kimg"] = training_progress(trainer, self, batch).kimg
        write_scalars(trainer, scalars, prog_bar=("g_step",))

    # ---------------------------------------------------------------------------- forwards
    def _d_forward(
        self, real: Tensor, z: Tensor, y_real: Tensor | None, y_fake: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """D's loss on reals and on fakes from ``z`` (no graph into G); (real, fake) logits, inputs."""
        with torch.no_grad():
            fake = self.generator(z, y_fake)
        critic = self._wrapped.get("discriminator", self.discriminator)
        inputs = self._augmented(real), self._augmented(fake)
        logits = critic(inputs[0], y_real), critic(inputs[1], y_fake)
        return self.loss.d_loss(*logits), logits, inputs

    def _g_forward(
        self, z: Tensor, y_fake: Tensor | None, real: Tensor, y_real: Tensor | None
    ) -> Tensor:
        """G's loss on fakes from ``z`` through the frozen D (relativistic: against D(real))."""
        fake = self._wrapped.get("generator", self.generator)(z, y_fake)
        fake_logits = self.discriminator(self._augmented(fake), y_fake)
        if not self.loss.relativistic:
            return self.loss.g_loss(fake_logits)
        return self.loss.g_loss(fake_logits, self.discriminator(self._augmented(real), y_real))

    def wrap_networks(self, wrap: Callable[[nn.Module], nn.Module] | None) -> None:
        """Train G and D through their own wrappers (e.g. DDP), or directly again (None)."""
        nets = ("generator", "discriminator") if wrap is not None else ()
        self._wrapped = {n: wrap(getattr(self, n)) for n in nets}
        self._step_functions = None  # compiled forwards captured the networks they called

    def _d_loss(
        self, d_forward: Callable[..., Any], real: Tensor, z: Tensor, *labels: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]]:
        """D's loss plus penalty on one (micro-)batch; detached loss, logits and penalty terms."""
        d_loss, logits, inputs = d_forward(real, z, *labels)
        penalty, terms = self._penalty(inputs, labels, logits)
        return d_loss + penalty, (d_loss.detach(), logits[0].detach(), logits[1].detach(), terms)

    # ---------------------------------------------------------------------------- helpers
    def _augmented(self, images: Tensor) -> Tensor:
        """DiffAugment / ADA when configured: D sees augmented reals and fakes, in both steps."""
        return self.augment(images) if self.augment is not None else images

    def _penalty(
        self,
        inputs: tuple[Tensor, Tensor],
        labels: tuple[Tensor | None, Tensor | None],
        logits: tuple[Tensor, Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """GP / R1 / R2 on D's (augmented) inputs, LeCam on its logits; conditional GP uses the
        real labels. Zero when no regularizer is set."""
        if self.regularizer is None:
            return torch.zeros((), device=inputs[0].device), {}
        step = {"real_logits": logits[0], "fake_logits": logits[1], "y_fake": labels[1]}
        return self.regularizer(self.discriminator, *inputs, labels[0], self.d_updates, **step)

    def _schedulers(self) -> list[LRScheduler]:
        schedulers = self.lr_schedulers() or []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def on_train_end(self) -> None:
        # the final step, also when the last batch was not a logged one: train.py reports it, and
        # spawned DDP ranks return only callback_metrics to the launching process
        self.trainer.callback_metrics["g_step"] = torch.tensor(float(self.global_step))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab"] = {"d_updates": self.d_updates, "noise_seed": self.noise_seed}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.d_updates = int(checkpoint.get("gan_lab", {}).get("d_updates", 0))
        self.noise_seed = checkpoint.get("gan_lab", {}).get("noise_seed", self.noise_seed)
