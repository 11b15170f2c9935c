"""TensorBoard event files from run records: `python -m scoring.tensorboard`.

  python -m scoring.tensorboard --run_dirs=runs[,more_runs] --logdir=tb
  tensorboard --logdir=tb

Each of --run_dirs is a run directory (it holds meta.json) or an experiment
directory, whose run directories are found below it at any depth. Every run
becomes one TensorBoard run, `LOGDIR/<workload>/<submission>/study_S/trial_T`,
holding the scalars of its records (the train loss and every metric of
metrics.jsonl; sharpness, preconditioned sharpness, threshold and threshold
ratio of curvature.jsonl) and, for a finished run, its hyperparameters and
results in the hparams plugin. The mapping from records to scalars is
`harness.tensorboard_log`'s, the same the runner's `--tensorboard` flag
writes live, so an exported run and a live one look the same.

A run's earlier event files are removed before it is written, so exporting
into the same log directory again replaces its points instead of doubling
them. Records stay the one contract: the event files are a view of them.
Needs tensorboardX (`pip install 'aeosperf[tensorboard]'`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Iterator, Mapping, Sequence

from absl import app
from absl import flags

from harness import cli
from harness import records
from harness import tensorboard_log

_PROGRAM = 'scoring.tensorboard'

_RUN_DIRS = flags.DEFINE_list(
    'run_dirs', [], 'Run directories or experiment directories (every run '
    'below them, at any depth), comma-separated.')
_LOGDIR = flags.DEFINE_string(
    'logdir', None, 'TensorBoard log directory to write the event files into.')


@dataclasses.dataclass(frozen=True)
class Exported:
  """One run written as a TensorBoard run.

  Attributes:
    run_dir: the run directory read.
    tensorboard_dir: the TensorBoard run written.
    num_scalars: scalar points written (the hparams view not counted).
    warnings: what the records reader skipped.
  """

  run_dir: pathlib.Path
  tensorboard_dir: pathlib.Path
  num_scalars: int
  warnings: tuple[str, ...] = ()


def run_scalars(record: records.RunRecord) -> list[tensorboard_log.Scalar]:
  """Every scalar of a run's records, in step order (evaluations first)."""
  timeline = tensorboard_log.Timeline(
      tensorboard_log.start_seconds(record.meta.start_time))
  for row in record.metrics:
    timeline.add(row)
  points = [(row.step, 0, p) for row in record.metrics
            for p in tensorboard_log.eval_scalars(
                row, timeline.wall_time(row.step))]
  points += [(row.step, 1, p) for row in record.curvature
             for p in tensorboard_log.probe_scalars(
                 row, timeline.wall_time(row.step))]
  return [p for _, _, p in sorted(points, key=lambda x: x[:2])]


def export_run(record: records.RunRecord,
               logdir: str | os.PathLike) -> Exported:
  """Writes one run's event files, replacing what its TensorBoard run held."""
  directory = tensorboard_log.tensorboard_run_dir(logdir, record.path)
  tensorboard_log.clear_events(directory)
  points = run_scalars(record)
  writer = tensorboard_log.EventWriter(directory)
  try:
    writer.scalars(points)
    if record.summary is not None:
      writer.hparams(*tensorboard_log.run_hparams(record.meta,
                                                  record.summary))
  finally:
    writer.close()
  return Exported(record.path, directory, len(points),
                  tuple(record.warnings))


@dataclasses.dataclass(frozen=True)
class Export:
  """What an export wrote, and the run directories it could not read."""

  exported: tuple[Exported, ...]
  skipped: tuple[str, ...] = ()


def find_runs(paths: Sequence[str | os.PathLike]
              ) -> Iterator[tuple[pathlib.Path, bool]]:
  """The run directories `paths` name or hold, each with whether it was named.

  Raises:
    cli.UserError: a path that does not exist or holds no run directory.
  """
  for path in map(pathlib.Path, paths):
    if (path / records.META_FILE).is_file():
      yield path, True
      continue
    if not path.is_dir():
      raise cli.UserError(f'{path}: no such directory (give run directories '
                          'or experiment directories)')
    found = list(records.find_run_dirs(path))
    if not found:
      raise cli.UserError(f'{path}: no run directories below it '
                          '(.../<workload>/<submission>/study_S/trial_T)')
    yield from ((run_dir, False) for run_dir in found)


def _check_distinct(run_dirs: Sequence[pathlib.Path],
                    logdir: str | os.PathLike) -> None:
  """Refuses two runs that would write into one TensorBoard run."""
  seen: dict[pathlib.Path, pathlib.Path] = {}
  for run_dir in run_dirs:
    target = tensorboard_log.tensorboard_run_dir(logdir, run_dir)
    if target in seen and seen[target].resolve() != run_dir.resolve():
      raise cli.UserError(
          f'{seen[target]} and {run_dir} are the same workload, submission, '
          'study and trial; export them into separate --logdir directories')
    seen[target] = run_dir


def _read(run_dirs: Mapping[pathlib.Path, bool]
          ) -> tuple[list[records.RunRecord], list[str]]:
  """Records of each run; one found below a directory may be skipped."""
  read, skipped = [], []
  for run_dir, named in run_dirs.items():
    try:
      read.append(records.read_run(run_dir))
    except records.RecordError as e:
      if named:
        raise
      skipped.append(str(e))
  if not read:
    raise cli.UserError(f'no usable run directory ({skipped[0]})')
  return read, skipped


def export_runs(paths: Sequence[str | os.PathLike],
                logdir: str | os.PathLike) -> Export:
  """Exports every run `paths` name or hold (see the module docstring).

  A run directory found below an experiment directory whose meta.json is
  unusable is skipped (and listed); one named itself is an error.

  Raises:
    cli.UserError: a path without runs, no usable run, two runs of one
      identity, or no tensorboardX.
    records.RecordError: a named run directory whose meta.json is unusable.
  """
  tensorboard_log.check_available()
  run_dirs: dict[pathlib.Path, bool] = {}
  for run_dir, named in find_runs(paths):
    run_dirs[run_dir] = run_dirs.get(run_dir, False) or named
  read, skipped = _read(run_dirs)
  _check_distinct([record.path for record in read], logdir)
  return Export(tuple(export_run(record, logdir) for record in read),
                tuple(skipped))


def main(argv: Sequence[str]) -> None:
  with cli.user_errors(_PROGRAM, records.RecordError):
    if len(argv) > 1:
      raise cli.UserError(f'unexpected arguments {argv[1:]}; give '
                          '--run_dirs=DIR[,DIR...] --logdir=OUT')
    if not _RUN_DIRS.value or not _LOGDIR.value:
      raise cli.UserError('give --run_dirs=DIR[,DIR...] and --logdir=OUT')
    export = export_runs(_RUN_DIRS.value, _LOGDIR.value)
    for skipped in export.skipped:
      print(f'{_PROGRAM}: skipped: {skipped}')
    for exported in export.exported:
      for warning in exported.warnings:
        print(f'{_PROGRAM}: warning: {warning}')
      print(f'{exported.run_dir} -> {exported.tensorboard_dir} '
            f'({exported.num_scalars} scalars)')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
