"""TensorBoard's HPARAMS records, written without TensorFlow (tensorboard's own helpers need it).

The hparams plugin reads three records per run (each run = one session):

- *session start*: the run's hyperparameter values; written when training starts, so a run in
  progress or killed is still listed;
- *experiment*: which hyperparameters and metric tags the table and the parallel-coordinates
  view have as columns; written at the end, when the metrics are known. TensorBoard keeps the
  first record of a tag per run and takes the experiment of one run for all runs in the logdir;
  the runs of a sweep share their keys, so any run's experiment fits all of them;
- *session end*: the status, written when training finishes (never on a stop that will be
  resumed: the first status of a run is the one TensorBoard keeps).

The metric values are the last scalar of each metric tag in the run (``final/loss/d``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

from gan_lab.hparams import Scalar
from gan_lab.loggers import event_file_writer


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def session_start(hparams: Mapping[str, Scalar]) -> Summary:
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, int | float):
            info.hparams[name].number_value = float(value)
        else:
            info.hparams[name].string_value = str(value)
    return _summary(
        metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info)
    )


def _data_type(value: Scalar) -> api_pb2.DataType:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


def experiment(
    hparams: Mapping[str, Scalar], varied: Sequence[str], metric_tags: Sequence[str]
) -> Summary:
    """Columns: every hyperparameter (``varied`` ones flagged, so the UI shows them first), the metrics.

    No value domains: a domain taken from one run would filter out the other runs' values.
    """
    infos = [
        api_pb2.HParamInfo(name=name, type=_data_type(value), differs=name in varied)
        for name, value in hparams.items()
    ]
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_tags]
    exp = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time()
    )
    return _summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=exp))


def session_end(status: api_pb2.Status = api_pb2.STATUS_SUCCESS) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _summary(
        metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info)
    )


def write(logger: TensorBoardLogger, *summaries: Summary, step: int = 0) -> None:
    """Append ``summaries`` to the logger's current event file (rank 0 only)."""
    file_writer = event_file_writer(logger)
    for summary in summaries:
        file_writer.add_summary(summary, step)
    file_writer.flush()
