"""What TensorBoard's HPARAMS view shows for a logdir, computed by TensorBoard's own backend."""

from __future__ import annotations

from pathlib import Path

from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
)

ALL_STATUSES = [
    api_pb2.STATUS_UNKNOWN,
    api_pb2.STATUS_SUCCESS,
    api_pb2.STATUS_FAILURE,
    api_pb2.STATUS_RUNNING,
]


def hparams_view(logdir: Path) -> tuple[api_pb2.Experiment, list[api_pb2.SessionGroup]]:
    """The HPARAMS columns (the experiment) and its rows (one session group per run)."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = backend_context.Context(
        base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=multiplexer)
    )
    request = tb_context.RequestContext()
    experiment = get_experiment.Handler(
        request, context, "", api_pb2.GetExperimentRequest(hparams_limit=1000)
    ).run()
    columns = [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos]
    columns += [api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
    rows = list_session_groups.Handler(
        request,
        context,
        "",
        api_pb2.ListSessionGroupsRequest(
            col_params=columns, allowed_statuses=ALL_STATUSES, start_index=0, slice_size=1000
        ),
    ).run()
    return experiment, list(rows.session_groups)


def metric_values(group: api_pb2.SessionGroup) -> dict[str, float]:
    return {m.name.tag: m.value for m in group.metric_values}
