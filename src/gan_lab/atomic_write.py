"""Small text files (run status, metrics, caches) written whole or not at all.

A reader (a sweep summary, a resumed run, another rank) must never see half a file: the text goes
to a hidden temp file beside the target, named per process, and is renamed over it in one step.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
