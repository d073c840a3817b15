"""MLflow and W&B loggers on a machine with no network: scalars, sample grids, hyperparameters."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig

import gan_lab.train
from gan_lab import loggers
from gan_lab.errors import UserError
from gan_lab.hparams import run_hyperparameters
from gan_lab.train import train
from tests.conftest import TINY_MLP_GAN

# TINY_MLP_GAN with its sample grids back on: the grids must reach the loggers too
LOGGED_GAN = (
    *(o for o in TINY_MLP_GAN if o != "~callbacks.sample_grid"),
    "callbacks.sample_grid.every_n_steps=2",
    "trainer.max_steps=3",
    "model.optimizer_d.lr=4e-4",
)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B offline and quiet, its files under tmp_path; any request would hit a closed port."""
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def with_group_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hyperparameters gan-train gives under Hydra: with group choices (``model/loss``)."""
    settings = gan_lab.train.run_summary_settings
    choices = {"experiment": "mnist_mlp_gan", "data": "synthetic", "model/loss": "non_saturating"}

    def under_hydra(cfg: DictConfig) -> dict:
        return {**settings(cfg), "hparams": run_hyperparameters(cfg, ["model=gan"], choices)}

    monkeypatch.setattr(gan_lab.train, "run_summary_settings", under_hydra)


def test_mlflow_local_store_holds_scalars_grids_and_hyperparameters(
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    no_network: None,
    one_cpu_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    with_group_choices(monkeypatch)
    train(make_cfg(*LOGGED_GAN, "logger=mlflow"))
    store = tmp_path / "run" / "mlruns"
    client = MlflowClient(store.resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss/d")
    assert [m.step for m in history] == [0, 1, 2] and all(m.value > 0 for m in history)
    assert run.data.metrics["final/g_step"] == 3 and "final/D_x" in run.data.metrics  # D(x)
    assert run.data.params["model.optimizer_d.lr"] == "0.0004"
    assert run.data.params["model.generator._target_"] == "MLPGenerator"
    assert run.data.params["model/loss"] == "non_saturating"  # beside "model/choice"
    images = [f.path for f in client.list_artifacts(run.info.run_id, "images")]
    assert any("samples~fixed_noise+step+2+" in p and p.endswith(".png") for p in images), images


def wandb_records(path: Path) -> Iterator[object]:
    """The records of a ``.wandb`` file: a 7-byte header, then a LevelDB-style log of 32 KiB
    blocks, each record ``crc32, length, type`` + a ``Record`` protobuf (FIRST/MIDDLE/LAST parts
    when it spans blocks)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, offset, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while offset + 7 <= len(data):
        room = block - offset % block
        if room < 7:  # block trailer: too small for a header
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if (length == 0 and kind == 0) or offset + 7 + length > len(data):
            break  # the end, or a record still being written
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def finished_records(path: Path, timeout: float = 60.0) -> list[object]:
    """The records once W&B's service has written the run's exit record: ``wandb.finish()`` can
    return while it still writes (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, "W&B never wrote the run's exit record"
        time.sleep(0.5)


def test_wandb_offline_run_folder_has_history_config_and_grids(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, no_network: None, one_cpu_thread: None
) -> None:
    train(make_cfg(*LOGGED_GAN, "logger=wandb", "logger.wandb.tags=[test,mlp]"))
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    (events,) = run_dir.glob("run-*.wandb")
    records = finished_records(events)
    history, config, tags = [], {}, []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {item.key or "/".join(item.nested_key): item for item in record.history.item}
            )
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            tags = list(record.run.tags)
    losses = [json.loads(row["loss/d"].value_json) for row in history if "loss/d" in row]
    assert len(losses) == 3 and all(v > 0 for v in losses)
    assert any("final/g_step" in row for row in history)
    assert config["model.optimizer_d.lr"] == 4e-4 and config["model.n_critic"] == 1
    assert tags == ["test", "mlp"]
    grids = list((run_dir / "files" / "media" / "images" / "samples").glob("fixed_noise_*.png"))
    assert len(grids) == 2  # steps 2 and 3 (the end)


def test_wandb_is_offline_unless_a_key_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    assert loggers.wandb_offline(None)
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert not loggers.wandb_offline(None)  # `wandb login` wrote a key
    assert loggers.wandb_offline(True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert loggers.wandb_offline(None)
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not loggers.wandb_offline(None)


def test_a_missing_logger_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        UserError, match=r"logger=wandb needs the wandb package: pip install 'gan-lab\[loggers\]'"
    ):
        loggers.wandb_logger(save_dir=".")


def test_mlflow_names_are_made_valid_not_stripped() -> None:
    assert loggers.mlflow_key("D(G(z))") == "D_G_z"
    assert loggers.mlflow_key("final/D(x)") == "final/D_x"
    assert loggers.mlflow_key("metrics/classifier_fd") == "metrics/classifier_fd"


def test_many_holds_every_logger(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("logger=many")
    assert sorted(cfg.logger) == ["csv", "mlflow", "tensorboard", "wandb"]
