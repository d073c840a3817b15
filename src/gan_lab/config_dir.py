"""Where the Hydra configs live: the clone's ``configs/`` when running from a clone (editable
install, PYTHONPATH), else the copy packaged into the wheel as ``gan_lab/configs``.

The clone wins so that editing ``configs/`` takes effect without reinstalling.
"""

from __future__ import annotations

from pathlib import Path


def find_config_dir() -> str:
    package = Path(__file__).resolve().parent
    clone = package.parents[1]  # <clone>/src/gan_lab -> <clone>
    if (clone / "pyproject.toml").is_file() and (clone / "configs" / "train.yaml").is_file():
        return str(clone / "configs")
    return str(package / "configs")
