"""The scored numbers of every run of a results page, kept in one JSON file beside the spec.

Run directories live on the machine that trained them (checkpoints are too large to commit),
and the page must survive that machine: each build writes every run's cells, curve points,
health count, machine and grid here, and a later build on another machine carries a run whose
directory is absent over from this file instead of listing it as missing. A run whose directory
is present is always read (and scored) afresh and replaces its record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gan_lab.atomic_write import write_text_atomically
from gan_lab.errors import UserError
from gan_lab.results.records import CellScore, CurvePoint

RECORDS_VERSION = 1


@dataclass(frozen=True)
class RunRecord:
    """What a build learned of one run: enough to write its rows, curves and targets again."""

    run_id: str
    built: str  # the build (date) that scored it
    machine: str
    cells: list[CellScore] = field(default_factory=list)
    curve: list[CurvePoint] = field(default_factory=list)
    health: int | None = None  # ``training health:`` warnings in train.log
    grid: tuple[str, float] | None = None  # path relative to the page, kimg


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _record(run_id: str, data: dict[str, Any]) -> RunRecord:
    grid = data.get("grid")
    return RunRecord(
        run_id=run_id,
        built=str(data["built"]),
        machine=str(data["machine"]),
        cells=[CellScore(**_known(CellScore, c)) for c in data.get("cells", [])],
        curve=[CurvePoint(**_known(CurvePoint, p)) for p in data.get("curve", [])],
        health=data.get("health"),
        grid=(str(grid[0]), float(grid[1])) if grid else None,
    )


def load_records(path: Path) -> dict[str, RunRecord]:
    """Run id -> record; an absent file is no records. A damaged one is an error that names it."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("version") != RECORDS_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {RECORDS_VERSION}")
        return {run_id: _record(run_id, entry) for run_id, entry in data["runs"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(
            f"{path} is not a results records file ({err}); restore it from git "
            "(git checkout -- <file>) or pass --records with a new path"
        ) from err


def save_records(path: Path, records: dict[str, RunRecord]) -> None:
    """Write all records at once (a reader never sees half a file)."""
    runs = {}
    for run_id, record in records.items():
        entry = asdict(record)
        del entry["run_id"]
        runs[run_id] = entry
    body = json.dumps({"version": RECORDS_VERSION, "runs": runs}, indent=1, sort_keys=True)
    write_text_atomically(path, body + "\n")
