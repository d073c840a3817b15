"""Offline machines: FID without weights is one line with exit 2; saving a checkpoint logs no
"weights_only was not set" (that message is Lightning's, about what a save contains)."""

from __future__ import annotations

import logging
import signal
import urllib.error
from pathlib import Path

import pytest

from gan_lab import train as train_module
from gan_lab.checkpoint_io import read_checkpoint
from gan_lab.errors import run_cli
from gan_lab.eval import evaluate
from gan_lab.metrics.features import WEIGHTS_URL
from tests.conftest import compose_train_config
from tests.test_eval_sample import entry_cfg
from tests.test_signals import TINY, SignalAtStep


def test_fid_without_weights_and_without_network_is_one_line_and_exit_2(
    tiny_gan_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(fidelity_inception, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached copy
    monkeypatch.delenv("GAN_FID_WEIGHTS", raising=False)
    ckpt = tiny_gan_run / "checkpoints" / "last.ckpt"
    # offline from the start (the reachability probe fails), and a download that fails after it
    for metrics, probe in (("[fid]", no_network), ("[kid,is]", lambda *a, **k: None)):
        monkeypatch.setattr(urllib.request, "urlopen", probe)
        cfg = entry_cfg(
            "eval", tmp_path, f"ckpt_path={ckpt}", f"metrics={metrics}", "inception_weights=null"
        )
        with pytest.raises(SystemExit) as exit_info:
            run_cli("gan-eval", evaluate, cfg)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("gan-eval: error: FID/KID/IS")
        assert "URLError: [Errno -3] Temporary failure in name resolution" in err
        for advice in (WEIGHTS_URL, "GAN_FID_WEIGHTS=<file>", "inception_weights=<file>"):
            assert advice in err
        assert not (tmp_path / "metrics.json").exists()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_resumable_checkpoint_of_a_signal_logs_no_weights_only_default(
    tmp_path: Path,
) -> None:
    """Lightning logs "`weights_only` was not set" when a save does not say what it holds."""
    cfg = compose_train_config([*TINY, "trainer.max_steps=50"], tmp_path / "run")
    records = Records()
    lightning_log = logging.getLogger("lightning.pytorch")  # propagate=False: caplog misses it
    lightning_log.addHandler(records)
    level = lightning_log.level
    lightning_log.setLevel(logging.INFO)
    original = train_module.instantiate_callbacks
    train_module.instantiate_callbacks = lambda c: [*original(c), SignalAtStep(3, signal.SIGINT)]
    try:
        with pytest.raises(SystemExit):
            train_module.train(cfg)
    finally:
        train_module.instantiate_callbacks = original
        lightning_log.removeHandler(records)
        lightning_log.setLevel(level)
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert records.messages  # Lightning's INFO lines were seen ...
    assert not [m for m in records.messages if "weights_only" in m]  # ... but not this one
