"""`gan-sample ckpt_path=... n=64`: pictures from a checkpoint's EMA generator.

Writes into the run directory (``output_dir``):
  grid.png                  the ``n`` samples in one grid
  images/NNNNNN.png         each sample as its own file (``individual=true``)
  interpolation.png / .gif  spherical interpolation between random latents, one row per pair
  class_grid.png            one row per class (conditional generators only)
  nearest_neighbours.png    each sample beside its closest training images (memorisation check)

``truncation=psi`` draws every latent from the truncated normal (sample_inspection.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid, save_image

from gan_lab.errors import run_cli
from gan_lab.hydra_errors import run_hydra_entry
from gan_lab.metrics.runner import generated_batches
from gan_lab.preflight_hook import preflight_sample
from gan_lab.sample_inspection import (
    check_truncation,
    truncated_batches,
    truncated_normal,
    write_nearest_neighbours,
)
from gan_lab.train import CONFIG_PATH
from gan_lab.trained_model import load_trained_gan

log = logging.getLogger(__name__)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of latent rows: stays on the shell where Gaussian latents live."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def latents(n: int, dim: int, g: torch.Generator, psi: float | None) -> Tensor:
    """N(0, I) latents, or truncated at ``psi`` (the truncation trick)."""
    return truncated_normal((n, dim), psi, g) if psi else torch.randn(n, dim, generator=g)


def interpolation(
    module: Any, rows: int, steps: int, seed: int, psi: float | None = None
) -> Tensor:
    """Images (rows * steps, C, H, W) in [-1, 1]: row r walks from latent a_r to b_r (same class)."""
    g = torch.Generator().manual_seed(seed)
    a, b = (latents(rows, module.latent_dim, g, psi) for _ in range(2))
    t = torch.linspace(0, 1, steps)[None, :, None]
    z = slerp(a[:, None], b[:, None], t).reshape(rows * steps, -1).to(module.device)
    y = None
    if module.num_classes:
        y = (
            torch.randint(0, module.num_classes, (rows,), generator=g)
            .repeat_interleave(steps)
            .to(module.device)
        )
    return module.generate(z, y)


def class_grid(module: Any, per_class: int, seed: int, psi: float | None = None) -> Tensor:
    """Images (num_classes * per_class, ...): row k asks for class k, the same latents in every row."""
    g = torch.Generator().manual_seed(seed)
    z = (
        latents(per_class, module.latent_dim, g, psi)
        .repeat(module.num_classes, 1)
        .to(module.device)
    )
    y = torch.arange(module.num_classes).repeat_interleave(per_class).to(module.device)
    return module.generate(z, y)


def to_pil(grid: Tensor) -> Image.Image:
    array = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)


def write_gif(frames: list[Tensor], path: Path, fps: int) -> None:
    """Frames are [0, 1] image tensors (C, H, W); the GIF loops forwards and back."""
    images = [to_pil(f).convert("RGB") for f in [*frames, *frames[-2:0:-1]]]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def sample(cfg: DictConfig) -> dict[str, Any]:
    """Write the pictures; returns the paths written (for tests and notebooks)."""
    preflight_sample(cfg)  # every option, the output folder, the checkpoint: before any write
    psi = check_truncation(cfg.get("truncation"))
    checkpoint = load_trained_gan(cfg.ckpt_path, cfg.device, cfg.get("run_dir"))
    module = checkpoint.module
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}

    batches = (
        truncated_batches(module, cfg.n, cfg.batch_size, cfg.seed, psi)
        if psi
        else generated_batches(module, cfg.n, cfg.batch_size, cfg.seed)
    )
    images = torch.cat([batch.cpu() for batch, _ in batches])
    floats = images.float() / 255
    save_image(floats, out / "grid.png", nrow=cfg.nrow)
    written["grid"] = out / "grid.png"
    if cfg.individual:
        folder = out / "images"
        folder.mkdir(exist_ok=True)
        for i, image in enumerate(images):
            to_pil(image.float() / 255).save(folder / f"{i:06d}.png")
        written["images"] = sorted(folder.glob("*.png"))

    rows, steps = cfg.interpolation.rows, cfg.interpolation.steps
    strip = interpolation(module, rows, steps, cfg.seed, psi)
    save_image(strip, out / "interpolation.png", nrow=steps, normalize=True, value_range=(-1, 1))
    written["interpolation"] = out / "interpolation.png"
    if cfg.interpolation.gif:
        by_step = strip.view(rows, steps, *strip.shape[1:])
        frames = [
            make_grid(by_step[:, s].cpu(), nrow=rows, normalize=True, value_range=(-1, 1))
            for s in range(steps)
        ]
        write_gif(frames, out / "interpolation.gif", cfg.interpolation.fps)
        written["gif"] = out / "interpolation.gif"
    if module.num_classes:
        grid = class_grid(module, cfg.per_class, cfg.seed, psi)
        save_image(
            grid, out / "class_grid.png", nrow=cfg.per_class, normalize=True, value_range=(-1, 1)
        )
        written["class_grid"] = out / "class_grid.png"
    if OmegaConf.select(cfg, "nearest_neighbours.enabled"):
        overrides = {"data_dir": cfg.data_dir, "cache_dir": cfg.cache_dir, "path": cfg.data_path}
        written |= write_nearest_neighbours(
            cfg.nearest_neighbours, checkpoint, images, out, overrides
        )
    log.info("wrote %d samples and grids to %s", len(images), out)
    print(f"gan-sample: wrote {', '.join(sorted(written))} to {out}")
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="sample")
def hydra_main(cfg: DictConfig) -> Any:
    return run_cli("gan-sample", sample, cfg)


def main() -> Any:
    """The ``gan-sample`` command: Hydra's composition errors, too, are one line and exit code 2."""
    return run_hydra_entry("gan-sample", hydra_main, CONFIG_PATH)


if __name__ == "__main__":
    main()
