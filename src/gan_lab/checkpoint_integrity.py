"""A digest of everything a checkpoint holds, stored inside it and checked on every load.

``torch.load`` does not notice flipped bytes in a tensor's storage: the file loads, resumes and
samples with wrong numbers. So before writing, the whole checkpoint (every tensor's dtype, shape
and bytes, every plain value, in a fixed key order) is hashed with SHA-256 and the digest is put
into the checkpoint under ``"integrity"``. Being part of the same file, it is written by the same
atomic rename: a kill between "data" and "digest" cannot happen. Files written before digests
existed (no ``"integrity"`` key) load with a warning.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

INTEGRITY_KEY = "integrity"
ALGORITHM = "sha256"


class IntegrityMismatch(ValueError):
    """The stored digest does not match the payload (raised as a CheckpointError by the reader)."""


def _feed(h: Any, node: Any) -> None:
    """Hash ``node`` recursively; the type tag keeps ``1``, ``1.0``, ``"1"`` and ``True`` apart."""
    if isinstance(node, torch.Tensor):
        t = node.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(node, dict):
        items = sorted(node.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
        h.update(f"D{len(items)}".encode())
        for key, value in items:
            _feed(h, key)
            _feed(h, value)
    elif isinstance(node, list | tuple):
        h.update(
            f"L{len(node)}".encode()
        )  # lists and tuples alike: loaders may turn one into the other
        for value in node:
            _feed(h, value)
    elif isinstance(node, bytes | bytearray):
        h.update(b"B%d" % len(node) + bytes(node))
    else:  # str, int, float, bool, None, torch.dtype / torch.Size reprs
        h.update(f"{type(node).__name__}:{node!r};".encode())


def payload_digest(checkpoint: dict[str, Any]) -> str:
    """SHA-256 over every entry except the digest itself."""
    h = hashlib.new(ALGORITHM)
    _feed(h, {k: v for k, v in checkpoint.items() if k != INTEGRITY_KEY})
    return h.hexdigest()


def seal(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint with its digest added (a shallow copy: the caller's dict is not changed)."""
    return {
        **checkpoint,
        INTEGRITY_KEY: {"algorithm": ALGORITHM, "digest": payload_digest(checkpoint)},
    }


def verify(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`IntegrityMismatch` when the stored digest disagrees with the payload."""
    stored = checkpoint.get(INTEGRITY_KEY)
    if stored is None:
        log.warning("checkpoint %s has no digest (written by an older gan-lab): not verified", path)
        return
    if not isinstance(stored, dict) or stored.get("algorithm") != ALGORITHM:
        raise IntegrityMismatch(f"its integrity record {stored!r} is not a {ALGORITHM} digest")
    if payload_digest(checkpoint) != stored.get("digest"):
        raise IntegrityMismatch(
            f"its {ALGORITHM} digest does not match its contents (bytes changed after it was written)"
        )
