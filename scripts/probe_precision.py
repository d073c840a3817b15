"""What bf16 autocast does to one GAN step, measured against fp32 on the same weights and batch.

    GAN_DATA_DIR=/path/to/data python scripts/probe_precision.py RUN.ckpt
    GAN_DATA_DIR=/path/to/data python scripts/probe_precision.py G.pt --d-steps 100

Takes G and D from a gan-lab Lightning checkpoint (e.g. the ``<dataset>-<label>.ckpt`` that
bench_quality.py leaves in ``--keep``), or a saved generator ``.pt`` (it holds no D) and a fresh
discriminator trained against it for ``--d-steps`` fp32 steps. Then, over ``--batches`` batches:

1. **Gradient fidelity**: each layer's gradient of the non-saturating G and D losses under bf16
   autocast (NCHW and channels_last), as cosine similarity and norm ratio to the fp32 gradient of
   the same batch. The row ``next batch`` (fp32, another batch) is the minibatch noise that SGD
   lives with anyway: a precision error far below it cannot steer training.
2. **D's resolution**: how D's logit moves when every real image gets a small random
   perturbation (``--levels`` uint8 levels, the size of the differences left late in training),
   in fp32 and in bf16. The correlation of the two responses over the images says whether a
   bf16 D still sees a difference of that size, or rounds it away (correlation near 0).
"""

from __future__ import annotations

import argparse
import copy
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classic_loop
from gan_lab.data.transforms import random_hflip, uint8_to_float
from gan_lab.models.losses import NonSaturatingLoss

LOSS = NonSaturatingLoss()
VARIANTS = ("bf16", "bf16 channels_last", "fp32 next batch")


def autocast(bf16: bool) -> torch.autocast | nullcontext:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def layout(net: nn.Module, channels_last: bool) -> nn.Module:
    net = copy.deepcopy(net)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return net.to(memory_format=fmt)


def gradients(
    which: str, G: nn.Module, D: nn.Module, z: Tensor, real: Tensor, bf16: bool, cl: bool
) -> dict[str, Tensor]:
    """Per-parameter gradient of G's or D's loss, G in train mode as in training."""
    G, D = layout(G, cl), layout(D, cl)
    with autocast(bf16):
        if which == "G":
            loss, net = LOSS.g_loss(D(G(z))), G
        else:
            with torch.no_grad():
                fake = G(z)
            loss, net = LOSS.d_loss(D(real), D(fake)), D
    loss.backward()
    return {name: p.grad.detach().float().flatten() for name, p in net.named_parameters()}


Fidelity = dict[tuple[str, str, str], tuple[float, float]]


def gradient_fidelity(G: nn.Module, D: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> Fidelity:
    """(net, parameter, variant) -> mean (cosine, norm ratio) to the same batch's fp32 gradient."""
    rows: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for which in ("G", "D"):
        fp32 = [gradients(which, G, D, z, real, bf16=False, cl=False) for z, real in batches]
        for i, (z, real) in enumerate(batches):
            ref = fp32[i]
            other = {
                "bf16": gradients(which, G, D, z, real, bf16=True, cl=False),
                "bf16 channels_last": gradients(which, G, D, z, real, bf16=True, cl=True),
                "fp32 next batch": fp32[(i + 1) % len(batches)],
            }
            for name, r in ref.items():
                for variant, grads in other.items():
                    cos = F.cosine_similarity(r, grads[name], dim=0).item()
                    ratio = (grads[name].norm() / r.norm()).item()
                    rows.setdefault((which, name, variant), []).append((cos, ratio))
    return {
        key: (sum(c for c, _ in v) / len(v), sum(r for _, r in v) / len(v))
        for key, v in rows.items()
    }


def print_fidelity(fidelity: Fidelity) -> None:
    for which in ("G", "D"):
        print(f"\n{which} gradients vs fp32 on the same batch: cosine / norm ratio (mean)")
        print(f"| {which} parameter | " + " | ".join(VARIANTS) + " |")
        print("|---|" + "---:|" * len(VARIANTS))
        names = dict.fromkeys(name for net, name, _ in fidelity if net == which)
        for name in names:
            cells = [f"{c:.4f} / {r:.3f}" for c, r in (fidelity[which, name, v] for v in VARIANTS)]
            print(f"| {name} | " + " | ".join(cells) + " |")


@torch.no_grad()
def d_resolution(
    D: nn.Module, reals: Tensor, levels: list[float]
) -> list[tuple[float, float, float]]:
    """(level, mean |response| in fp32, correlation of the fp32 and bf16 responses) per level."""
    D = layout(D, False).eval()  # running statistics: the logit of each image on its own
    gen = torch.Generator().manual_seed(7)
    rows = []
    for level in levels:
        delta = torch.randn(reals.shape, generator=gen) * (level / 127.5)
        responses = []
        for bf16 in (False, True):
            with autocast(bf16):
                responses.append((D(reals + delta).float() - D(reals).float()).flatten())
        corr = torch.corrcoef(torch.stack(responses))[0, 1].item()
        rows.append((level, responses[0].abs().mean().item(), corr))
    return rows


def print_resolution(rows: list[tuple[float, float, float]]) -> None:
    print("\nD's logit response to a +-N-level perturbation of each real image, fp32 vs bf16")
    print("| uint8 levels | mean abs response fp32 | corr(fp32, bf16) |")
    print("|---:|---:|---:|")
    for level, response, corr in rows:
        print(f"| {level:g} | {response:.4f} | {corr:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "networks", type=Path, help="a gan-lab .ckpt, or a generator saved by bench_quality.py"
    )
    parser.add_argument("--setup", choices=sorted(classic_loop.SETUPS), default="dcgan32")
    parser.add_argument("--d-steps", type=int, default=100, help="fp32 D steps against fixed G")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.5, 1, 4, 16])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not args.networks.is_file():
        parser.error(
            f"{args.networks}: no such file (a gan-train checkpoint, or bench_quality.py "
            "--keep DIR's generators)"
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    setup = classic_loop.SETUPS[args.setup]
    G, D = classic_loop.networks(setup)
    saved = torch.load(args.networks, map_location="cpu", weights_only=False)
    if "state_dict" in saved:  # a Lightning checkpoint: the trained pair
        for prefix, net in (("generator.", G), ("discriminator.", D)):
            weights = {
                k[len(prefix) :]: v for k, v in saved["state_dict"].items() if k.startswith(prefix)
            }
            try:
                net.load_state_dict(weights)
            except RuntimeError as err:
                parser.error(
                    f"{args.networks}: its {prefix[:-1]} is not the one --setup {args.setup} "
                    f"builds (pick the setup the run trained): {str(err)[:300]}"
                )
        args.d_steps, source = 0, f"G and D at G step {saved['global_step']}"
    else:
        G, source = saved["generator"], f"G; D trained {args.d_steps} fp32 steps against it"
    G = layout(G.float(), False).train()
    import hydra

    images = hydra.utils.instantiate(classic_loop.compose(setup).data).load_split("train").images
    n, latent = setup.batch_size, int(G.latent_dim)

    def real_batch() -> Tensor:
        return random_hflip(uint8_to_float(images[torch.randint(len(images), (n,))]))

    opt = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    for _ in range(args.d_steps):
        with torch.no_grad():
            fake = G(torch.randn(n, latent))
        loss = LOSS.d_loss(D(real_batch()), D(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print(f"{args.networks}: {source}")
    batches = [(torch.randn(n, latent), real_batch()) for _ in range(args.batches)]
    print_fidelity(gradient_fidelity(G, D, batches))
    print_resolution(d_resolution(D, torch.cat([real for _, real in batches]), args.levels))


if __name__ == "__main__":
    main()
