"""TensorBoard event files of a run, from its records (and live, as written).

The records stay the one contract between running and scoring; event files
are a view of them. This module holds the one mapping from a record to
TensorBoard scalars (`eval_scalars`, `probe_scalars`, `run_hparams`), used
both live by the runner (`--tensorboard=LOGDIR`: `Mirror` wraps the
`records.RunWriter` and writes a record's scalars when the record is
written) and afterwards by `python -m scoring.tensorboard`, which replays the
records of finished runs.

One TensorBoard run per run directory, at the run directory's own layout
below the log directory: `LOGDIR/<workload>/<submission>/study_S/trial_T`.

Tags:
  train_loss                  the training loss at an evaluation's step
  <split>/<metric>            every metric of the evaluation, as recorded
  curvature/sharpness         lambda_1(H)
  curvature/preconditioned_sharpness   lambda_1(P^-1 H)
  curvature/threshold         the submission's stability threshold
  curvature/threshold_ratio   sharpness (preconditioned when there is a
                              preconditioner) / threshold
Scalars a record leaves unset (null) are not written. Wall times are the
run's start time plus the submission time, so TensorBoard's relative axis is
training time: an evaluation's own, a probe the time of the last evaluation
at or before its step.

tensorboardX writes the files; it is an optional extra
(`pip install 'aeosperf[tensorboard]'`).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import json
import math
import pathlib
from typing import Any, Iterable, Mapping

from harness import cli
from harness import records

EVENT_FILE_GLOB = 'events.out.tfevents.*'
INSTALL_HINT = "pip install 'aeosperf[tensorboard]'"

# ProbeRecord field -> tag; the ratio and threshold say whether the probe
# stayed below the edge of stability.
_PROBE_TAGS = (
    ('sharpness', 'curvature/sharpness'),
    ('preconditioned_sharpness', 'curvature/preconditioned_sharpness'),
    ('stability_threshold', 'curvature/threshold'),
    ('threshold_ratio', 'curvature/threshold_ratio'),
)


class TensorBoardUnavailable(cli.UserError):
  """tensorboardX is not installed; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class Scalar:
  """One point of one TensorBoard scalar series."""

  tag: str
  value: float
  step: int
  wall_time: float | None = None


def start_seconds(start_time: str) -> float | None:
  """meta.json's ISO start time in seconds since the epoch (None: unusable).

  A time without a zone is taken as UTC, the zone the runner writes.
  """
  try:
    moment = datetime.datetime.fromisoformat(start_time)
  except (TypeError, ValueError):
    return None
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return moment.timestamp()


class Timeline:
  """Submission time by step, from the evaluations seen so far.

  Probe records carry no time of their own; a probe's wall time is the time
  of the last evaluation at or before its step.
  """

  def __init__(self, start: float | None):
    self.start = start
    self._steps: list[int] = []
    self._times: list[float] = []

  def add(self, record: records.EvalRecord) -> None:
    at = bisect.bisect_left(self._steps, record.step)
    if at < len(self._steps) and self._steps[at] == record.step:
      self._times[at] = record.submission_time_s
      return
    self._steps.insert(at, record.step)
    self._times.insert(at, record.submission_time_s)

  def drop_from(self, step: int) -> None:
    """Forgets evaluations of steps >= step (a resume replays them)."""
    at = bisect.bisect_left(self._steps, step)
    del self._steps[at:], self._times[at:]

  def wall_time(self, step: int) -> float | None:
    at = bisect.bisect_right(self._steps, step) - 1
    if self.start is None or at < 0:
      return self.start
    return self.start + self._times[at]


def eval_scalars(record: records.EvalRecord,
                 wall_time: float | None = None) -> list[Scalar]:
  """The scalars of one metrics.jsonl line: the train loss, every metric."""
  values = {'train_loss': record.train_loss, **record.metrics}
  return [Scalar(tag, float(value), record.step, wall_time)
          for tag, value in values.items() if value is not None]


def probe_scalars(record: records.ProbeRecord,
                  wall_time: float | None = None) -> list[Scalar]:
  """The scalars of one curvature.jsonl line (unset values left out)."""
  return [Scalar(tag, float(getattr(record, field)), record.step, wall_time)
          for field, tag in _PROBE_TAGS
          if getattr(record, field) is not None]


def _hparam_value(value: Any) -> bool | int | float | str:
  """A value TensorBoard's hparams plugin shows: a scalar, or its JSON."""
  if isinstance(value, (bool, int, float, str)):
    return value
  return json.dumps(value, sort_keys=True, default=str)


def run_hparams(meta: records.Meta, summary: records.Summary | None
                ) -> tuple[dict[str, Any], dict[str, float]]:
  """The hparams plugin's view of a run: its hyperparameters, its results.

  The result names start with `hparams/`, so that they never collide with a
  scalar series (the plugin would show that series instead).
  """
  hparams = {name: _hparam_value(value)
             for name, value in sorted(meta.hparams.items())}
  hparams.update(submission=meta.submission.name, seed=meta.seed,
                 study=meta.study, trial=meta.trial)
  results: dict[str, float] = {}
  if summary is not None:
    for name in ('time_to_target_s', 'steps_to_target', 'final_step',
                 'submission_time_s', 'sharpness_at_solution'):
      value = getattr(summary, name)
      if value is not None and math.isfinite(value):
        results[f'hparams/{name}'] = float(value)
  return hparams, results


def tensorboard_run_dir(logdir: str | pathlib.Path, run_directory: pathlib.Path
                        ) -> pathlib.Path:
  """LOGDIR/<workload>/<submission>/study_S/trial_T of a run directory."""
  return pathlib.Path(logdir).joinpath(*pathlib.Path(run_directory).parts[-4:])


def clear_events(directory: pathlib.Path) -> None:
  """Removes the event files of one TensorBoard run (a rewrite starts anew)."""
  for path in pathlib.Path(directory).glob(EVENT_FILE_GLOB):
    path.unlink()


def _summary_writer_class() -> Any:
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise TensorBoardUnavailable(
        f'writing TensorBoard event files needs tensorboardX: {INSTALL_HINT}'
    ) from None
  return tensorboardX.SummaryWriter


def check_available() -> None:
  """Raises TensorBoardUnavailable (one line) unless tensorboardX imports."""
  _summary_writer_class()


class EventWriter:
  """One TensorBoard run's event file, written through tensorboardX."""

  def __init__(self, directory: pathlib.Path, *, purge_step: int | None = None):
    self.directory = pathlib.Path(directory)
    self.directory.mkdir(parents=True, exist_ok=True)
    # purge_step makes TensorBoard drop the points of steps >= it that an
    # earlier event file holds: a resumed run rewrites them.
    self._writer = _summary_writer_class()(
        logdir=str(self.directory), purge_step=purge_step, flush_secs=10)

  def scalars(self, points: Iterable[Scalar]) -> None:
    for point in points:
      self._writer.add_scalar(point.tag, point.value, point.step,
                              walltime=point.wall_time)

  def hparams(self, hparams: Mapping[str, Any],
              results: Mapping[str, float]) -> None:
    """The hparams plugin's records, into this run (not a sub-run)."""
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    # SummaryWriter.add_hparams would open a sub-run per call; writing the
    # plugin's three summaries here keeps one TensorBoard run per run.
    for proto in summary.hparams(dict(hparams), dict(results)):
      self._writer.file_writer.add_summary(proto)
    for tag, value in results.items():
      self._writer.add_scalar(tag, value)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class Mirror:
  """A `records.RunWriter` that also writes the records' scalars, live.

  Every call is forwarded to the wrapped writer first; the event file
  follows what the records hold: `clear` and `write_meta` (a run's start)
  remove the run's event files, `truncate_from(step)` (a resume) reopens
  them with a purge at `step`, and the summary adds the hparams view. The runner writes records outside the timed region,
  so the event files cost no submission time.
  """

  def __init__(self, writer: records.RunWriter, logdir: str | pathlib.Path):
    self._inner = writer
    self.tensorboard_dir = tensorboard_run_dir(logdir, writer.directory)
    self._meta: records.Meta | None = None
    self._timeline = Timeline(None)
    self._events: EventWriter | None = None
    self._purge_step: int | None = None
    self._hparams_written = False
    self._load_existing()

  def __getattr__(self, name: str) -> Any:
    if name == '_inner':  # Not yet set: no recursion through __getattr__.
      raise AttributeError(name)
    return getattr(self._inner, name)

  @property
  def directory(self) -> pathlib.Path:
    return self._inner.directory

  def _load_existing(self) -> None:
    """Meta and evaluation times of records already there (a resume)."""
    try:
      self._meta = records.read_json(self.directory / records.META_FILE,
                                     records.Meta)
    except records.RecordError:
      self._meta = None
    self._timeline = Timeline(self._meta and start_seconds(
        self._meta.start_time))
    evals, _ = records.read_jsonl(self.directory / records.METRICS_FILE,
                                  records.EvalRecord)
    for record in evals:
      self._timeline.add(record)

  def _open(self) -> EventWriter:
    if self._events is None:
      self._events = EventWriter(self.tensorboard_dir,
                                 purge_step=self._purge_step)
    return self._events

  def _close_events(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None
    self._hparams_written = False

  def clear(self) -> None:
    self._inner.clear()
    self._close_events()
    clear_events(self.tensorboard_dir)
    self._meta, self._timeline, self._purge_step = None, Timeline(None), None

  def truncate_from(self, step: int) -> None:
    self._inner.truncate_from(step)
    self._close_events()
    self._purge_step = step
    self._load_existing()

  def write_meta(self, meta: records.Meta) -> None:
    # meta.json is written once, before a run's first step: the run starts
    # anew, and so do its event files (an --overwrite leaves none behind).
    self._inner.write_meta(meta)
    self._close_events()
    clear_events(self.tensorboard_dir)
    self._meta, self._purge_step = meta, None
    self._timeline = Timeline(start_seconds(meta.start_time))

  def append_eval(self, record: records.EvalRecord) -> None:
    self._inner.append_eval(record)
    self._timeline.add(record)
    self._open().scalars(eval_scalars(
        record, self._timeline.wall_time(record.step)))

  def append_probe(self, record: records.ProbeRecord) -> None:
    self._inner.append_probe(record)
    self._open().scalars(probe_scalars(
        record, self._timeline.wall_time(record.step)))

  def write_summary(self, summary: records.Summary) -> None:
    self._inner.write_summary(summary)
    # A stop signal's summary may be followed by the loop's own; the hparams
    # view is written once per event file, so its results are not doubled.
    if self._meta is not None and not self._hparams_written:
      self._open().hparams(*run_hparams(self._meta, summary))
      self._hparams_written = True
    if self._events is not None:
      self._events.flush()

  def close(self) -> None:
    self._inner.close()
    self._close_events()


def mirror(writer: records.RunWriter | None, logdir: str
           ) -> records.RunWriter | Mirror | None:
  """`writer` with a live TensorBoard mirror under `logdir` ('' : none)."""
  if writer is None or not logdir:
    return writer
  return Mirror(writer, logdir)
