"""Progress lines: what each shows, when, and that logs hold plain text."""

from __future__ import annotations

import io
import re
import textwrap
from unittest import mock

from harness import config as config_lib
from harness import progress
from harness import records
from harness import runner
from tests import submission_sources


def _bar(**kwargs) -> tuple[progress.Progress, io.StringIO]:
  stream = io.StringIO()
  kwargs.setdefault('force_terminal', False)
  return progress.Progress(100, stream=stream, **kwargs), stream


def _steps(reports, times, **kwargs) -> list[str]:
  """Lines of `step(step, submission_time, loss)` calls at wall `times`."""
  bar, stream = _bar(**kwargs)
  with mock.patch.object(progress.time, 'perf_counter', side_effect=times):
    for step, submission_time, loss in reports:
      bar.step(step, submission_time, loss)
  return stream.getvalue().splitlines()


def _probe_record(**changes) -> records.ProbeRecord:
  values = dict(
      step=40, reason=records.ProbeReason.SCHEDULE, learning_rate=1e-3,
      train_loss=0.5, curvature_batch_loss=0.5, sharpness=12.3,
      sharpness_topk=(12.3,), preconditioned_sharpness=37000.0,
      preconditioned_sharpness_topk=(37000.0,), stability_threshold=38000.0,
      threshold_ratio=37000 / 38000, threshold_unknown=None, grad_norm=1.0,
      preconditioner_norm=1.0, lanczos_residual=1e-4, lanczos_hvps=20,
      lanczos_converged=True, curvature_batch_size=100, probe_seconds=0.83)
  return records.ProbeRecord(**{**values, **changes})


def test_rate_uses_submission_time_and_eta_wall_time():
  # 10 steps take 1 s of training but 5 s of wall time (probes, evals).
  lines = _steps([(10, 1.0, 0.5), (20, 2.0, 0.5), (30, 3.0, 0.5)],
                 [0.0, 5.0, 10.0], log_every=10)
  assert '? steps/s' in lines[0] and 'ETA ?' in lines[0]
  assert '10.0 steps/s' in lines[1]
  assert 'ETA 0:00:40' in lines[1]  # 80 steps at 0.5 s of wall each.
  assert 'ETA 0:00:35' in lines[2]


def test_eta_runs_to_the_nearer_budget():
  # 1 s of submission time per 5 s of wall; 2 s of the 4 s budget are left.
  lines = _steps([(10, 1.0, 0.5), (20, 2.0, 0.5)], [0.0, 5.0],
                 log_every=10, max_runtime_s=4.0)
  assert 'ETA 0:00:10' in lines[1]


def test_a_run_that_stops_at_the_target_says_its_eta_is_a_bound():
  lines = _steps([(10, 1.0, 0.5), (20, 2.0, 0.5)], [0.0, 5.0],
                 log_every=10, stops_at_target=True)
  notes = [line for line in lines if line.startswith('ETA:')]
  assert len(notes) == 1 and 'stops earlier if it reaches the target' in (
      notes[0])
  assert 'ETA ≤ 0:00:40' in lines[-1]


def test_train_loss_is_the_steps_own_and_absent_without_one():
  with_loss, without = _steps([(10, 1.0, 0.25), (20, 2.0, None)],
                              [0.0, 5.0], log_every=10)
  assert 'train loss 0.25 |' in with_loss
  assert 'loss' not in without and without.startswith('step  20/100 |')


def test_a_line_every_log_every_steps():
  reports = [(step, step * 0.1, 1.0) for step in range(1, 10)]
  lines = _steps(reports, [float(s) for s in range(1, 10)], log_every=3)
  assert [int(re.match(r'step +(\d+)/', line).group(1))
          for line in lines] == [3, 6, 9]


def test_an_evaluation_line_names_its_metrics():
  bar, stream = _bar()
  bar.evaluation(50, {'train/loss': 0.29, 'validation/loss': 0.3,
                      'validation/accuracy': 0.81, 'test/accuracy': 0.8},
                 'validation/accuracy', 0.85)
  assert stream.getvalue() == (
      'eval at step  50/100 | train/loss 0.29 | validation/loss 0.3 | '
      'validation/accuracy 0.8100 (target 0.85)\n')


def test_a_probe_line_gives_time_sharpness_and_ratio():
  bar, stream = _bar()
  bar.probe_starting()
  bar.probe(_probe_record())
  bar.probe_starting()  # Compiled already: no second line.
  bar.probe(_probe_record(step=60, preconditioned_sharpness=None,
                          stability_threshold=None, threshold_ratio=None,
                          threshold_unknown='no dynamics hook'))
  compiling, first, second = stream.getvalue().splitlines()
  assert compiling.startswith('compiling the curvature probe')
  assert first == ('probe at step 40 (schedule, 0.83s) | λ1(H) 12.3 | '
                   'λ1(P⁻¹H) 3.7e+04 | threshold 3.8e+04 | ratio 0.974')
  assert second.endswith('λ1(H) 12.3 | threshold unknown: no dynamics hook')


def test_hparams_line():
  assert progress.hparams_line({'learning_rate': 0.001, 'beta1': 0.9,
                                'nesterov': True, 'schedule': 'cosine'}) == (
      "hparams: learning_rate=0.001, beta1=0.9, nesterov=True, "
      "schedule='cosine'")


def _every_line(bar: progress.Progress) -> None:
  bar.hparams({'learning_rate': 0.001})
  bar.evaluation(0, {'train/loss': 2.0}, 'validation/accuracy')
  for step in range(1, 4):
    bar.step(step, 0.1 * step, 1.0)
  bar.probe_starting()
  bar.probe(_probe_record())
  bar.close('budget_exhausted after 3 steps')


def test_plain_text_without_a_terminal_and_a_bar_with_one():
  plain, plain_stream = _bar(log_every=1)
  _every_line(plain)
  text = plain_stream.getvalue()
  assert '\x1b' not in text and '\r' not in text
  assert len(text.splitlines()) == 8
  live, live_stream = _bar(log_every=1, force_terminal=True)
  _every_line(live)
  drawn = live_stream.getvalue()
  assert '\x1b[' in drawn and '━' in drawn  # rich's bar.
  assert 'probe at step 40' in drawn and 'budget_exhausted' in drawn


def test_quiet_prints_nothing():
  bar, stream = _bar(quiet=True)
  _every_line(bar)
  assert stream.getvalue() == ''


# An update that returns no metrics, hence no loss, and keeps the params.
_NO_LOSS = '''
    import optax

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      return optax.EmptyState()

    def update_params(workload, current_param_container, current_params_types,
                      model_state, hyperparameters, batch, loss_type,
                      optimizer_state, eval_results, global_step, rng):
      return optimizer_state, current_param_container, model_state
    ''' + submission_sources.NEXT_BATCH


def test_the_runner_shows_no_loss_for_an_update_that_returns_none(
    tmp_path, capsys):
  path = tmp_path / 'no_loss.py'
  path.write_text(textwrap.dedent(_NO_LOSS))
  runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission=str(path), train_size=100,
      chunk_size=100, max_steps=4, log_every=2, eval_every=100,
      experiment_dir=str(tmp_path / 'runs')))
  lines = capsys.readouterr().err.splitlines()
  steps = [line for line in lines if line.startswith('step ')]
  assert [line.split('|')[0].strip() for line in steps] == ['step 2/4',
                                                           'step 4/4']
  assert not any('loss' in line for line in steps), steps
  assert 'hparams: none' in lines
  evals = [line for line in lines if line.startswith('eval at step')]
  assert len(evals) == 2 and all('train/loss' in line and
                                 'validation/accuracy' in line
                                 for line in evals)
