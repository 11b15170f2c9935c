"""TensorBoard event files: exported from records, and written live."""

from __future__ import annotations

import math
import pathlib
import struct
import subprocess
import sys

import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from harness import tensorboard_log
from scoring import tensorboard
from tests import commands
from tests import scoring_fixtures as fx

event_pb2 = pytest.importorskip('tensorboardX.proto.event_pb2')



def _records_of(path: pathlib.Path):
  """The payloads of a TFRecord file: length, its CRC, data, data's CRC."""
  data = path.read_bytes()
  at = 0
  while at < len(data):
    (length,) = struct.unpack('<Q', data[at:at + 8])
    yield data[at + 12:at + 12 + length]
    at += 12 + length + 4


def read_events(directory: pathlib.Path):
  """(scalars {tag: [(step, value, wall_time)]}, hparams plugin summaries)."""
  scalars, plugins = {}, []
  for path in sorted(directory.glob(tensorboard_log.EVENT_FILE_GLOB)):
    for payload in _records_of(path):
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'hparams':
          plugins.append(value.tag)
        elif value.HasField('simple_value'):
          scalars.setdefault(value.tag, []).append(
              (event.step, value.simple_value, event.wall_time))
  return scalars, plugins


def _points(scalars):
  """Tag -> [(step, value)], without wall times and hparams results."""
  return {tag: [(s, v) for s, v, _ in points]
          for tag, points in scalars.items()
          if not tag.startswith('hparams/')}


def _expected(run_dir: pathlib.Path):
  """The scalars the records hold, by tag, as float32 (TensorBoard's)."""
  record = records.read_run(run_dir)
  expected = {}
  for row in record.metrics:
    values = {'train_loss': row.train_loss, **row.metrics}
    for tag, value in values.items():
      expected.setdefault(tag, []).append((row.step, value))
  for row in record.curvature:
    for field, tag in (('sharpness', 'curvature/sharpness'),
                       ('preconditioned_sharpness',
                        'curvature/preconditioned_sharpness'),
                       ('stability_threshold', 'curvature/threshold'),
                       ('threshold_ratio', 'curvature/threshold_ratio')):
      if getattr(row, field) is not None:
        expected.setdefault(tag, []).append((row.step, getattr(row, field)))
  return {tag: [(s, struct.unpack('f', struct.pack('f', v))[0])
                for s, v in points] for tag, points in expected.items()}


@pytest.fixture
def experiment(tmp_path):
  root = tmp_path / 'runs'
  adam = fx.write_run(root, 'w1', 'adam', time_to_target_s=12.0,
                      steps_to_target=60, curvature=fx.rising_probes(6),
                      start_time='2025-01-01T00:00:00+00:00')
  sgd = fx.write_run(root / 'nested', 'w1', 'sgd', 1, 2,
                     status='budget_exhausted',
                     curvature=fx.rising_probes(3, preconditioned=False))
  return root, adam, sgd


def test_export_writes_the_records_scalars(experiment, tmp_path):
  root, adam, sgd = experiment
  logdir = tmp_path / 'tb'
  export = tensorboard.export_runs([root], logdir)
  assert {e.run_dir for e in export.exported} == {adam, sgd}
  assert export.skipped == ()
  for run_dir in (adam, sgd):
    target = tensorboard_log.tensorboard_run_dir(logdir, run_dir)
    assert target.relative_to(logdir) == run_dir.relative_to(
        run_dir.parents[3])
    scalars, plugins = read_events(target)
    assert _points(scalars) == _expected(run_dir)
    assert set(plugins) == {'_hparams_/experiment',
                            '_hparams_/session_start_info',
                            '_hparams_/session_end_info'}
  scalars, _ = read_events(logdir / 'w1' / 'sgd' / 'study_1' / 'trial_2')
  # Without a preconditioner there is no preconditioned sharpness.
  assert 'curvature/preconditioned_sharpness' not in scalars
  assert scalars['hparams/final_step'][0][1] == 300


def test_wall_times_are_the_start_plus_submission_time(experiment, tmp_path):
  _, adam, _ = experiment
  tensorboard.export_runs([adam], tmp_path / 'tb')
  scalars, _ = read_events(
      tensorboard_log.tensorboard_run_dir(tmp_path / 'tb', adam))
  start = tensorboard_log.start_seconds('2025-01-01T00:00:00+00:00')
  record = records.read_run(adam)
  times = {row.step: row.submission_time_s for row in record.metrics}
  for step, _, wall in scalars['train_loss']:
    assert wall == pytest.approx(start + times[step])
  # A probe takes the time of the last evaluation at or before its step
  # (the start before the first evaluation).
  probes = scalars['curvature/sharpness']
  assert probes[0][0] < min(times)
  for step, _, wall in probes:
    before = [times[s] for s in times if s <= step]
    assert wall == pytest.approx(start + max(before, default=0.0))


def test_exporting_twice_does_not_duplicate_points(experiment, tmp_path):
  root, adam, _ = experiment
  logdir = tmp_path / 'tb'
  tensorboard.export_runs([root], logdir)
  first = read_events(tensorboard_log.tensorboard_run_dir(logdir, adam))
  tensorboard.export_runs([root], logdir)
  target = tensorboard_log.tensorboard_run_dir(logdir, adam)
  assert len(list(target.glob(tensorboard_log.EVENT_FILE_GLOB))) == 1
  second = read_events(target)
  assert _points(second[0]) == _points(first[0])
  assert len(second[1]) == len(first[1])


def test_unreadable_runs_below_a_directory_are_skipped(experiment, tmp_path):
  root, adam, _ = experiment
  broken = fx.write_run(root, 'w2', 'adam')
  fx.corrupt_meta(broken)
  export = tensorboard.export_runs([root], tmp_path / 'tb')
  assert len(export.exported) == 2
  assert len(export.skipped) == 1 and str(broken) in export.skipped[0]
  with pytest.raises(records.RecordError):  # Named itself: an error.
    tensorboard.export_runs([broken], tmp_path / 'tb')


def test_the_same_run_twice_under_two_roots_is_refused(experiment, tmp_path):
  root, adam, _ = experiment
  copy = fx.write_run(tmp_path / 'other', 'w1', 'adam',
                      time_to_target_s=1.0, steps_to_target=10)
  with pytest.raises(tensorboard_log.cli.UserError, match='separate --logdir'):
    tensorboard.export_runs([adam, copy], tmp_path / 'tb')


def _command(*args: str) -> subprocess.CompletedProcess:
  return commands.run_module('scoring.tensorboard', *args)


def test_command_exports_and_errors_in_one_line(experiment, tmp_path):
  root, adam, sgd = experiment
  empty = tmp_path / 'empty'
  empty.mkdir()
  run = _command(f'--run_dirs={adam},{sgd}', f'--logdir={tmp_path / "tb"}')
  assert run.returncode == 0, run.stderr
  assert str(adam) in run.stdout and 'scalars' in run.stdout
  for args, message in (
      ((f'--run_dirs={tmp_path / "nowhere"}', f'--logdir={tmp_path}'),
       'no such directory'),
      ((f'--run_dirs={empty}', f'--logdir={tmp_path}'),
       'no run directories'),
      # The event files' own layout holds no records: nothing usable.
      ((f'--run_dirs={tmp_path / "tb"}', f'--logdir={tmp_path}'),
       'no usable run directory'),
      ((f'--run_dirs={root}',), '--logdir=OUT')):
    run = _command(*args)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith('scoring.tensorboard: error: ')
    assert message in lines[0]


def test_missing_tensorboardx_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorboardX', None)
  with pytest.raises(tensorboard_log.TensorBoardUnavailable,
                     match=r"pip install 'aeosperf\[tensorboard\]'"):
    tensorboard_log.check_available()


def test_live_mirror_writes_what_the_export_writes(tmp_path):
  """A short real run with --tensorboard, against the export of its records."""
  live = tmp_path / 'live'
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission='adam', train_size=1000,
      chunk_size=500, quiet=True, log_every=5, max_steps=6, eval_every=3,
      stop_at_target=False, experiment_dir=str(tmp_path / 'runs'),
      curvature=config_lib.CurvatureConfig(every=3, num_iterations=4),
      tensorboard=str(live)))
  live_scalars, live_plugins = read_events(
      tensorboard_log.tensorboard_run_dir(live, result.run_dir))
  tensorboard.export_runs([result.run_dir], tmp_path / 'exported')
  exported, plugins = read_events(
      tensorboard_log.tensorboard_run_dir(tmp_path / 'exported',
                                          result.run_dir))
  assert _points(live_scalars) == _points(exported) == _expected(
      result.run_dir)
  assert [s for s, _ in _points(live_scalars)['train_loss']] == [0, 3, 6]
  assert 'curvature/threshold_ratio' in live_scalars
  assert sorted(live_plugins) == sorted(plugins) and plugins
  for tag, points in live_scalars.items():
    assert all(math.isclose(a[2], b[2], abs_tol=1e-3)
               for a, b in zip(points, exported[tag])), tag


def _replay(writer, run_dir: pathlib.Path) -> None:
  """Writes a finished run's records again through `writer`, as a run does."""
  record = records.read_run(run_dir)
  writer.write_meta(record.meta)
  for row in record.metrics:
    writer.append_eval(row)
  for row in record.curvature:
    writer.append_probe(row)
  writer.write_summary(record.summary)


def test_mirror_restarts_its_events_with_the_run(experiment, tmp_path):
  """A rerun into the same directory (--overwrite) leaves no old points."""
  _, adam, _ = experiment
  live = tmp_path / 'live'
  for _ in range(2):
    target = records.run_dir(tmp_path / 'rerun', 'w1', 'adam')
    writer = tensorboard_log.mirror(records.RunWriter(target), str(live))
    _replay(writer, adam)
    writer.close()
  scalars, plugins = read_events(
      tensorboard_log.tensorboard_run_dir(live, target))
  assert _points(scalars) == _expected(adam)
  assert len(plugins) == 3
  assert tensorboard_log.mirror(records.RunWriter(target), '').__class__ is (
      records.RunWriter)
