"""What a run ran on, kept in its run directory (``machine.json``): figures are compared per CPU.

The CPU type changes speed ratios (AMX runs bf16 convolutions several times faster than
AVX-512-bf16, which on some Xeons is slower than fp32), and CPU-minutes need the thread count,
so every ``gan-train`` records both next to its config.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any


def cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what Python's platform module says."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or "unknown CPU")


def describe_cpu() -> str:
    """Model name and the bf16 units that decide which precision is fast on it."""
    flags = cpu_flags()
    if not flags:
        return f"{cpu_model()} (CPU flags unknown)"
    amx = "amx_bf16" if "amx_bf16" in flags else "no amx_bf16"
    avx = "avx512_bf16" if "avx512_bf16" in flags else "no avx512_bf16"
    return f"{cpu_model()}, {avx}, {amx}"


def machine_record() -> dict[str, Any]:
    """CPU, torch threads, accelerators and torch version of this process."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": describe_cpu(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "torch": torch.__version__,
    }


def write_machine_record(output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "machine.json").write_text(json.dumps(machine_record(), indent=2) + "\n")
