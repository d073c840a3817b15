"""``trainer.precision=auto``: bf16 autocast where it is the faster format, fp32 where it is not.

Whether bf16 pays depends on the chip, not on its flags: on CUDA GPUs of compute capability 8.0+
(Ampere on) bf16 has tensor cores; on CPUs the same ``avx512_bf16`` flag meant 2x the fp32 step on
one Xeon and 0.5x on another (docs/benchmarks.md). So on a CPU ``auto`` times one small
convolution step in both formats, once per CPU model, torch version and thread count, and keeps
the answer in ``paths.cache_dir``: a resumed run, and every rank started after rank 0, read the
same answer, so they train in the same precision. On other accelerators it picks 32-true.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

from gan_lab.atomic_write import write_text_atomically
from gan_lab.machine import cpu_model

try:
    import fcntl
except ImportError:  # Windows: no lock; two first runs at once both measure, the last one is kept
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

AUTO = "auto"
BF16, FP32 = "bf16-mixed", "32-true"
# bf16 is chosen only when it is clearly faster: near-equal timings keep the exact format
MIN_SPEEDUP = 1.15


def uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def uses_cpu(accelerator: str) -> bool:
    """Lightning's ``auto`` takes a GPU (CUDA, then Apple's MPS) when there is one."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return accelerator == "cpu" or (
        accelerator == "auto" and not torch.cuda.is_available() and not (mps and mps.is_available())
    )


def cuda_choice() -> tuple[str, str]:
    import torch

    major, minor = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    if major >= 8:
        return BF16, f"{name} (compute capability {major}.{minor}) has bf16 tensor cores"
    return FP32, f"{name} (compute capability {major}.{minor}) has no bf16 tensor cores"


def conv_step_seconds(bf16: bool, repeats: int = 5) -> float:
    """Best-of-``repeats`` time of a DCGAN-sized convolution forward and backward (NHWC)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 16, 16, generator=generator).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(64, 128, 4, stride=2, padding=1).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    best = float("inf")
    for i in range(repeats + 1):  # the first call builds the kernels: not timed
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = conv(x)
        out.float().square().mean().backward()
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def cpu_probe_key() -> str:
    import torch

    model = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-").lower()
    return f"precision-{model}-torch{torch.__version__}-threads{torch.get_num_threads()}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One process per cache file measures; the others wait, then read its answer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cpu_choice(cache_dir: Path) -> tuple[str, str]:
    """The measured choice of this CPU, from the cache or measured now (about a second)."""
    path = Path(cache_dir) / f"{cpu_probe_key()}.json"
    with locked(path):
        if path.exists():
            record = json.loads(path.read_text())
        else:
            fp32, bf16 = conv_step_seconds(bf16=False), conv_step_seconds(bf16=True)
            speedup = fp32 / bf16
            record = {
                "precision": BF16 if speedup >= MIN_SPEEDUP else FP32,
                "bf16_speedup": round(speedup, 3),
                "cpu": cpu_model(),
            }
            write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    why = f"bf16 convolutions ran {record['bf16_speedup']}x fp32 on this CPU; measured once, kept in {path}"
    return str(record["precision"]), why


def resolve_precision(precision: object, accelerator: str, cache_dir: Path | str) -> object:
    """``precision`` unchanged unless it is ``auto``; then the fast format of this machine."""
    if str(precision) != AUTO:
        return precision
    if uses_cuda(str(accelerator)):
        chosen, why = cuda_choice()
    elif uses_cpu(str(accelerator)):
        chosen, why = cpu_choice(Path(cache_dir))
    else:
        chosen, why = FP32, f"accelerator {accelerator}: no bf16 rule, fp32 is exact"
    log.info("trainer.precision=auto: %s (%s)", chosen, why)
    return chosen
