"""Opening a run directory: one writer, and start, resume or refuse.

A launch locks the directory (`records.RunLock`) for the run's life, so a
second launch on it fails at once naming the holder, and `--overwrite`
cannot replace a live run. Then what the directory holds decides:

| it holds                                  | the launch              |
|-------------------------------------------|-------------------------|
| nothing, or a run that failed before its  | starts the run; no      |
| first step (an error at step 0)           | `--overwrite` needed    |
| a finished run (target, budget, diverged) | refuses; `--overwrite`  |
|                                           | replaces it             |
| an unfinished run (interrupted, killed,   | resumes it from its     |
| failed after its first step)              | last checkpoint (from   |
|                                           | step 0 without one);    |
|                                           | `--noresume` refuses,   |
|                                           | `--overwrite` restarts  |

An error at step 0 with no checkpoint leaves nothing to keep, whoever's it
was (a set-up error, `error_kind` setup, or a first update that raised). A
resumed launch whose own set-up failed (`error_kind` setup, at a later step
or while restoring) resumes again from its checkpoint, so the steps before
it are kept; nothing of a finished run is replaced without `--overwrite`.

A resume must use the flags the run started with, except those that change
nothing it records (`RESUMABLE_CHANGES`), and as many processes: a run's
records, checkpoints and data parts are those of its process count.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from harness import config as config_lib
from harness import records

Status = records.Status

FINISHED = frozenset({Status.REACHED_TARGET, Status.BUDGET_EXHAUSTED,
                      Status.DIVERGED, Status.TRAINING_COMPLETE})

# Flags a resumed run may change: where and how often it saves, how much it
# prints, and how evaluation data is held, none of which changes a record.
RESUMABLE_CHANGES = frozenset({
    'experiment_dir', 'quiet', 'overwrite', 'resume', 'checkpoint_every',
    'checkpoint_every_s', 'eval_resident_gb', 'tensorboard'})


class RunDirectoryError(ValueError):
  """The run directory cannot be used as asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class Opened:
  """A locked run directory and how the run should begin.

  Attributes:
    writer: the records' writer.
    lock: held until `close`.
    resume: True to continue from the directory's last checkpoint (the
      runner looks it up); False to start at step 0 with a new meta.json.
  """

  writer: records.RunWriter
  lock: records.RunLock
  resume: bool

  def close(self) -> None:
    self.writer.close()
    self.lock.release()


def open_run(directory: pathlib.Path, config: config_lib.RunConfig, *,
             source_sha256: str, started: str,
             processes: int = 1) -> Opened:
  """Locks `directory` and decides whether the run starts or resumes.

  Args:
    directory: the run directory.
    config: the run as launched now.
    source_sha256: the submission's source hash now; a run whose code has
      changed since it started is not resumed.
    started: the launch time (ISO 8601), written into the lock.
    processes: the processes (hosts) of the launch.

  Raises:
    RunDirectoryError: the directory is held by a live process, holds a
      finished run without `overwrite`, holds an unfinished run with
      `resume` off, or was started with other flags, code or number of
      processes.
  """
  lock = records.RunLock(directory)
  try:
    lock.acquire(started)
  except records.RunLocked as e:
    raise RunDirectoryError(str(e)) from None
  try:
    resume = decide(directory, config, source_sha256, processes)
  except BaseException:
    lock.release()
    raise
  writer = records.RunWriter(directory)
  if not resume:
    writer.clear()
  return Opened(writer=writer, lock=lock, resume=resume)


def decide(directory: pathlib.Path, config: config_lib.RunConfig,
           source_sha256: str, processes: int = 1) -> bool:
  """True to resume, False to start afresh; raises to refuse."""
  if not (directory / records.META_FILE).exists():
    return False
  try:
    meta = records.read_json(directory / records.META_FILE, records.Meta)
  except records.RecordError as e:
    if config.overwrite:
      return False
    raise RunDirectoryError(
        f'{e}; pass --overwrite to replace this directory') from None
  summary = read_summary(directory)
  if failed_before_first_step(directory, summary):
    return False  # Nothing to keep.
  if config.overwrite:
    return False
  if summary is not None and summary.status in FINISHED:
    raise RunDirectoryError(
        f'{directory} holds a finished run ({summary.status.value} at step '
        f'{summary.final_step}); pass --overwrite to replace it, or choose '
        'another --experiment_dir, --study or --trial')
  state = ('was killed' if summary is None else
           f'ended {summary.status.value} at step {summary.final_step}')
  if not config.resume:
    raise RunDirectoryError(
        f'{directory} holds an unfinished run (it {state}); rerun with '
        '--resume to continue it or --overwrite to start again')
  changed = changed_flags(meta.config, config)
  if changed:
    raise RunDirectoryError(
        f'cannot resume {directory}: it was started with other flags '
        f'({"; ".join(changed)}); rerun with the same flags, or pass '
        '--overwrite to start again')
  if meta.submission.source_sha256 != source_sha256:
    raise RunDirectoryError(
        f'cannot resume {directory}: the source of submission '
        f'{meta.submission.name} changed since the run started (sha256 '
        f'{meta.submission.source_sha256[:12]} -> {source_sha256[:12]}); '
        'restore it, or pass --overwrite to start again')
  ran_on = meta.devices.process_count
  if ran_on != processes:
    raise RunDirectoryError(
        f'cannot resume {directory}: it ran on {_processes(ran_on)} and this '
        f'launch has {processes}; resume it with {_processes(ran_on)}, or '
        'pass --overwrite to start again')
  return True


def _processes(count: int) -> str:
  return f'{count} process' + ('es' if count != 1 else '')


def failed_before_first_step(directory: pathlib.Path,
                             summary: records.Summary | None) -> bool:
  """Whether the run ended in an error with nothing to keep.

  That is an error at step 0 with no checkpoint beside it: a launch that
  failed while restoring an earlier launch's checkpoint also ends at step
  0, and its checkpoint is still worth resuming.
  """
  if summary is None or summary.status is not Status.ERROR or (
      summary.final_step != 0):
    return False
  checkpoints = directory / records.CHECKPOINT_DIR
  return not (checkpoints.is_dir() and any(checkpoints.iterdir()))


def read_summary(directory: pathlib.Path) -> records.Summary | None:
  """The run's summary; None when it has none, or none that is usable."""
  if not (directory / records.SUMMARY_FILE).exists():
    return None
  try:
    return records.read_json(directory / records.SUMMARY_FILE,
                             records.Summary)
  except records.RecordError:
    return None  # Unusable: treated as a run that never finished.


def changed_flags(started: dict[str, Any],
                  config: config_lib.RunConfig) -> list[str]:
  """`name: then -> now` for each setting that differs from the start's."""
  now = json.loads(json.dumps(dataclasses.asdict(config)))
  names = sorted((set(started) | set(now)) - RESUMABLE_CHANGES)
  return [f'{name}: {started.get(name)!r} -> {now.get(name)!r}'
          for name in names if started.get(name) != now.get(name)]
