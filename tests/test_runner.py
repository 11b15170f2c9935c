"""The timed runner, end to end on the bundled Fashion-MNIST subset."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest

from harness import calibration
from harness import config as config_lib
from harness import records
from harness import run_directory
from harness import runner
from submissions import loading
from tests import commands
import workloads
import workloads.image_classification

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Keep test runs short: 1,000 examples in chunks of 500.
SMALL = dict(workload='fmnist_fc', train_size=1000, chunk_size=500,
             quiet=True, log_every=5)

def _calibrated() -> dict:
  """A rerun of fmnist_fc's calibration that reached its target: the
  chosen point and seed, on the workload's own 5,000-example full batch.

  Of the reruns that reached it, the one whose first reaching is least
  close a call: the largest margin both above the target at that
  evaluation and below it at the one before. XLA compiles for the CPU it
  runs on, so another machine's float rounding moves these accuracies by
  an example or two of the 2,000 (measured: 0.8540 recorded, 0.8525
  here, for the rerun closest to the target); the margin keeps the step
  to target the recorded one.

  Returns:
    RunConfig fields, and under 'reached_at' the step the record says the
    target was first reached at its evaluation interval.
  """
  record = calibration.read(calibration.committed_path('fmnist_fc'))
  best, best_margin = None, 0.0
  for rerun in record.seeds:
    reached = calibration.first_reaching(
        rerun.curve, record.target_value,
        higher_is_better=record.higher_is_better)
    if reached is None:
      continue
    index = rerun.curve.steps.index(reached[0])
    sign = 1 if record.higher_is_better else -1
    before = rerun.curve.values[index - 1] if index else -sign * math.inf
    margin = sign * min(rerun.curve.values[index] - record.target_value,
                        record.target_value - before, key=lambda d: sign * d)
    if best is None or margin > best_margin:
      best, best_margin = (rerun, reached), margin
  if best is None:
    raise AssertionError('no rerun of the committed calibration reached it')
  rerun, reached = best
  # The runtime budget is what a score reads; a loaded test machine must
  # not cut these runs short of the target they check.
  return dict(submission=rerun.submission, hparams=rerun.hparams,
              seed=rerun.seed, eval_every=record.eval_every,
              train_size=5000, chunk_size=1000, max_runtime_s=600.0,
              reached_at=reached[0])


TIMING_FIELDS = ('submission_time_s', 'compile_free_time_s', 'eval_seconds',
                 'wall_time_s')


def _run(tmp_path, **overrides) -> runner.RunResult:
  kwargs = {**SMALL, 'experiment_dir': str(tmp_path), **overrides}
  return runner.train(config_lib.RunConfig(**kwargs))


def _metrics(result: runner.RunResult) -> tuple[records.EvalRecord, ...]:
  return records.read_run(result.run_dir).metrics


def _untimed_metrics(result: runner.RunResult) -> list[dict]:
  """Metrics records without their timings, which differ run to run."""
  return [{k: v for k, v in m.to_json().items() if k not in TIMING_FIELDS}
          for m in _metrics(result)]


@pytest.mark.parametrize('submission,hparams', [
    ('gd', {'learning_rate': 0.05}),
    ('adam', {'learning_rate': 1e-3}),
])
def test_loss_decreases(tmp_path, submission, hparams):
  result = _run(tmp_path, submission=submission, hparams=hparams,
                max_steps=40, eval_every=20, stop_at_target=False)
  losses = [m.train_loss for m in _metrics(result)]
  assert [m.step for m in _metrics(result)] == [0, 20, 40]
  assert losses[1] < 0.8 * losses[0] and losses[2] < losses[1]
  assert result.status == records.Status.BUDGET_EXHAUSTED
  summary = result.summary
  assert summary.first_step_s > 0 and summary.submission_time_s > 0
  assert summary.final_step == 40


def test_same_seed_same_records(tmp_path):
  runs = [_run(tmp_path / str(i), submission='adam', max_steps=20,
               eval_every=10, seed=3) for i in range(2)]
  other = _run(tmp_path / 'other', submission='adam', max_steps=20,
               eval_every=10, seed=4)

  assert _untimed_metrics(runs[0]) == _untimed_metrics(runs[1])
  assert _untimed_metrics(runs[0]) != _untimed_metrics(other)


def test_target_reached_records_time_and_steps(tmp_path):
  calibrated = _calibrated()
  reached_at = calibrated.pop('reached_at')
  result = _run(tmp_path, max_steps=300, **calibrated)
  assert result.status == records.Status.REACHED_TARGET
  metrics = _metrics(result)
  first = next(m for m in metrics if m.target_reached)
  # The committed calibration reproduces: the same step, and the run stops.
  assert result.summary.steps_to_target == first.step == reached_at == (
      metrics[-1].step)
  assert result.summary.time_to_target_s == pytest.approx(
      first.submission_time_s)
  # Evaluation is excluded from the submission clock.
  assert result.summary.submission_time_s < result.summary.wall_time_s


def test_streamed_evaluation_matches_resident_evaluation(tmp_path):
  common = dict(submission='adam', max_steps=10, eval_every=5, seed=1)
  resident = _run(tmp_path / 'resident', **common)
  # A zero budget streams every split from host memory, chunk by chunk.
  streamed = _run(tmp_path / 'streamed', eval_resident_gb=0.0, **common)

  assert len(_untimed_metrics(resident)) == 3
  assert _untimed_metrics(streamed) == _untimed_metrics(resident)
  with pytest.raises(ValueError, match='eval_resident_gb'):
    config_lib.RunConfig(workload='fmnist_fc', submission='adam',
                         eval_resident_gb=-1.0)


def test_keep_training_past_target(tmp_path):
  calibrated = _calibrated()
  reached_at = calibrated.pop('reached_at')
  steps = reached_at + 2 * calibrated['eval_every']
  result = _run(tmp_path, max_steps=steps, stop_at_target=False,
                **calibrated)
  assert result.status == records.Status.REACHED_TARGET
  assert result.summary.final_step == steps
  assert result.summary.steps_to_target == reached_at


def test_divergent_learning_rate_ends_as_diverged(tmp_path):
  # Under MSE the linear output layer lets GD's iterates blow up to inf
  # (under cross-entropy tanh saturation keeps the loss finite).
  result = _run(tmp_path, workload='fmnist_fc_mse', submission='gd',
                hparams={'learning_rate': 10.0}, max_steps=100, eval_every=50)
  assert result.status == records.Status.DIVERGED
  run = records.read_run(result.run_dir)
  assert run.summary.status == records.Status.DIVERGED
  assert run.summary.final_step < 100
  assert run.metrics and run.metrics[0].step == 0


def test_existing_run_directory_is_not_overwritten(tmp_path):
  _run(tmp_path, submission='gd', max_steps=2, eval_every=2)
  with pytest.raises(run_directory.RunDirectoryError,
                     match='finished run.*overwrite'):
    _run(tmp_path, submission='gd', max_steps=2, eval_every=2)
  _run(tmp_path, submission='gd', max_steps=2, eval_every=2, overwrite=True)


def test_minibatch_regime_is_reproducible(tmp_path):
  kwargs = dict(submission='adam', max_steps=20, eval_every=10,
                full_batch=False, batch_size=100, chunk_size=100)
  a = _run(tmp_path / 'a', **kwargs)
  b = _run(tmp_path / 'b', **kwargs)
  meta = records.read_run(a.run_dir).meta
  assert meta.regime == records.Regime(full_batch=False, train_size=1000,
                                       batch_size=100, chunk_size=100)
  assert [m.train_loss for m in _metrics(a)] == [
      m.train_loss for m in _metrics(b)]


def test_meta_records_provenance(tmp_path):
  result = _run(tmp_path, submission='nesterov', max_steps=2, eval_every=2)
  meta = records.read_run(result.run_dir).meta
  assert meta.hparams == {'learning_rate': 0.002, 'beta1': 0.9}
  assert meta.devices.count >= 1 and meta.devices.kind
  assert meta.versions['jax']
  assert meta.workload.target_metric == 'validation/accuracy'
  assert result.run_dir == (tmp_path / 'fmnist_fc' / 'nesterov' / 'study_0' /
                            'trial_0')


def _runner_command(tmp_path, *flags):
  return [sys.executable, '-m', 'harness.submission_runner',
          '--workload=fmnist_fc', f'--experiment_dir={tmp_path}',
          '--train_size=1000', '--chunk_size=500', *flags]


def _env(**extra):
  return {**os.environ, 'PYTHONPATH': str(ROOT), **extra}


def test_runner_subprocess_end_to_end(tmp_path):
  out = subprocess.run(
      _runner_command(tmp_path, '--submission=gd', '--max_steps=10',
                      '--eval_every=5', '--hparams={"learning_rate": 0.05}'),
      cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  run_dir = pathlib.Path(out.stdout.strip().splitlines()[-1])
  assert 'run directory' in out.stderr and 'loss' in out.stderr
  run = records.read_run(run_dir)
  assert run.summary.status == records.Status.BUDGET_EXHAUSTED
  assert [m.step for m in run.metrics] == [0, 5, 10]
  assert run.meta.hparams == {'learning_rate': 0.05}


def test_runner_subprocess_rejects_bad_flags(tmp_path):
  out = subprocess.run(
      _runner_command(tmp_path, '--submission=nope'), cwd=ROOT, env=_env(),
      capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert 'adam_nobc' in out.stderr  # Lists the known baselines.


def _start_long_gd_run(tmp_path, *flags) -> tuple[subprocess.Popen,
                                                   pathlib.Path]:
  """Starts an endless GD run; returns it once 3 evaluations are on disk."""
  proc = subprocess.Popen(
      _runner_command(tmp_path, '--submission=gd', '--max_steps=100000',
                      '--eval_every=2', '--quiet', *flags),
      cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  run_dir = tmp_path / 'fmnist_fc' / 'gd' / 'study_0' / 'trial_0'
  metrics = run_dir / records.METRICS_FILE
  deadline = time.time() + 120
  while time.time() < deadline and (
      not metrics.exists() or metrics.read_text().count('\n') < 3):
    time.sleep(0.1)
  return proc, run_dir


def test_sigterm_checkpoints_and_exits_143_and_the_rerun_resumes(tmp_path):
  proc, run_dir = _start_long_gd_run(tmp_path, '--log_every=1')
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 143
  run = records.read_run(run_dir)
  assert run.summary.status == records.Status.INTERRUPTED
  assert len(run.metrics) >= 3 and not run.warnings
  stopped_at = run.summary.final_step
  assert (run_dir / records.CHECKPOINT_DIR / str(stopped_at)).is_dir()
  proc, _ = _start_long_gd_run(tmp_path, '--log_every=1')
  deadline = time.time() + 120
  while time.time() < deadline and records.read_run(run_dir).metrics[
      -1].step <= stopped_at + 2:
    time.sleep(0.1)
  proc.send_signal(signal.SIGINT)
  assert proc.wait(timeout=120) == 130
  summary = records.read_run(run_dir).summary
  assert summary.resumed_at_steps == (stopped_at,)
  assert summary.final_step > stopped_at


def test_killed_process_leaves_readable_records(tmp_path):
  proc, run_dir = _start_long_gd_run(tmp_path)
  proc.kill()
  proc.wait()
  run = records.read_run(run_dir)
  assert run.status == records.Status.KILLED
  assert len(run.metrics) >= 3


def test_two_devices_match_one_device(tmp_path):
  script = (
      'import json, sys\n'
      'from harness import config, runner\n'
      'import jax\n'
      'r = runner.train(config.RunConfig(workload="fmnist_fc", '
      'submission="adam", experiment_dir=sys.argv[1], train_size=1000, '
      'chunk_size=500, max_steps=10, eval_every=5, quiet=True, '
      'stop_at_target=False))\n'
      'print(json.dumps({"devices": jax.device_count(), '
      '"losses": [json.loads(l)["train_loss"] for l in '
      'open(r.run_dir / "metrics.jsonl")]}))\n')
  results = {}
  for count in (1, 2):
    env = commands.forced_devices(count)
    out = subprocess.run([sys.executable, '-c', script,
                          str(tmp_path / str(count))], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results[count] = json.loads(out.stdout.strip().splitlines()[-1])
  assert results[1]['devices'] == 1 and results[2]['devices'] == 2
  np.testing.assert_allclose(results[2]['losses'], results[1]['losses'],
                             rtol=1e-5)


def test_tfds_workload_with_mock_data(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=5100,
                              policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared',
                        return_value=True):
    result = _run(tmp_path, workload='cifar10_fc', submission='adam',
                  train_size=100, chunk_size=50, max_steps=4, eval_every=2,
                  data=config_lib.base.DataConfig(data_dir=str(tmp_path)))
  run = records.read_run(result.run_dir)
  assert [m.step for m in run.metrics] == [0, 2, 4]
  assert all(np.isfinite(m.train_loss) for m in run.metrics)
  assert run.meta.workload.name == 'cifar10_fc'


def test_frozen_adam_from_a_saved_preconditioner(tmp_path):
  """Adam's P saved at step 10 drives frozen Adam from its first step."""
  probing = config_lib.CurvatureConfig(every=5, at_events=False)
  adam = _run(tmp_path / 'adam', submission='adam_nobc', max_steps=10,
              eval_every=10, save_preconditioner_at=(10,), curvature=probing)
  saved = adam.run_dir / 'preconditioner_step_10.npz'
  assert saved.exists()
  adam_norm = records.read_run(adam.run_dir).curvature[-1].preconditioner_norm
  frozen = _run(tmp_path / 'frozen', submission='frozen_adam', max_steps=10,
                eval_every=10, curvature=probing,
                hparams={'preconditioner_path': str(saved)})
  norms = [c.preconditioner_norm for c in
           records.read_run(frozen.run_dir).curvature]
  assert [c.step for c in records.read_run(frozen.run_dir).curvature] == [
      5, 10]
  np.testing.assert_allclose(norms, adam_norm, rtol=1e-4)


class _EasyTarget(workloads.image_classification.FashionMnistFC):
  """A test's own variant: the same network with a target met at step 0."""

  name = 'fmnist_fc_easy_target'
  target_value = 0.0


def test_train_runs_workload_and_submission_objects(tmp_path):
  submission = loading.load('gd', {'learning_rate': 0.05})
  result = runner.train(
      config_lib.RunConfig(**{**SMALL, 'submission': 'gd',
                              'experiment_dir': str(tmp_path),
                              'max_steps': 10, 'eval_every': 5}),
      workload=_EasyTarget(), submission=submission)
  run = records.read_run(result.run_dir)
  assert result.run_dir == records.run_dir(tmp_path, 'fmnist_fc_easy_target',
                                           'gd')
  assert run.meta.workload.name == 'fmnist_fc_easy_target'
  assert run.meta.config['workload'] == 'fmnist_fc_easy_target'
  assert run.meta.hparams == run.meta.config['hparams'] == {
      'learning_rate': 0.05}
  # The variant's target, not fmnist_fc's, decided the run.
  assert run.summary.status is records.Status.REACHED_TARGET
  assert run.summary.steps_to_target == 0
