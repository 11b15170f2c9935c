"""The clock treats every optimizer alike: each step function compiles once,
in the first step (counted in AlgoPerf's time, kept out of the compile-free
time), never inside the steady loop.

For the Adam family optax's step count starts as an uncommitted scalar and
comes back from the first step replicated on the mesh; unless the harness
places every input with its final sharding before step 0, the second step
sees a new input layout and compiles again, on the submission's clock.
"""

from __future__ import annotations

import textwrap

import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from scoring import scores
from submissions import loading
from tests import submission_sources
import workloads

SHORT_FORM = '''
    import optax

    DEFAULT_HPARAMS = {'learning_rate': 1e-3}

    def make_optimizer(hparams):
      # Several counters and a schedule: state leaves of every kind.
      schedule = optax.linear_schedule(hparams['learning_rate'], 0.0, 100)
      return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(1e-4),
                         optax.scale_by_schedule(lambda n: -schedule(n)))
    '''

ALGOPERF_FORM = '''
    import functools
    import jax
    import optax
    from algoperf import spec

    DEFAULT_HPARAMS = {'learning_rate': 1e-3}

    # The state holds the learning rate, which `update` reads from it.
    _OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)

    def init_optimizer_state(workload, model_params, model_state,
                             hyperparameters, rng):
      return optax.inject_hyperparams(optax.adam)(
          learning_rate=hyperparameters.learning_rate).init(model_params)

    ''' + submission_sources.OPTAX_UPDATE + submission_sources.NEXT_BATCH


def _submission_file(tmp_path, name, text):
  path = tmp_path / f'{name}.py'
  path.write_text(textwrap.dedent(text))
  return str(path)


SUBMISSIONS = sorted(loading.BASELINES) + ['short_form', 'algoperf_form']


@pytest.mark.parametrize('name', SUBMISSIONS)
def test_no_compilation_inside_the_timed_region(tmp_path, name):
  spec = {'short_form': lambda: _submission_file(tmp_path, name, SHORT_FORM),
          'algoperf_form': lambda: _submission_file(tmp_path, name,
                                                    ALGOPERF_FORM),
          }.get(name, lambda: name)()
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission=spec, experiment_dir=str(tmp_path),
      train_size=500, chunk_size=500, max_steps=12, eval_every=6,
      log_every=3, quiet=True, stop_at_target=False))
  assert result.summary.final_step == 12
  assert result.summary.timed_compiles == 0


PREPARE_FOR_EVAL = '''

    import time

    PREPARE_S = 0.02

    def prepare_for_eval(workload, current_param_container,
                         current_params_types, model_state, hyperparameters,
                         loss_type, optimizer_state, eval_results, global_step,
                         rng):
      # Slower than any bookkeeping, so that counting it shows.
      time.sleep(PREPARE_S)
      return optimizer_state, current_param_container, model_state
    '''


def test_time_to_target_counts_compilation_and_prepare_for_eval(tmp_path):
  # AlgoPerf's training time holds the first step's compilation and every
  # prepare_for_eval; the compile-free time beside it holds neither.
  spec = _submission_file(tmp_path, 'prepared',
                          ALGOPERF_FORM + PREPARE_FOR_EVAL)
  base_workload = workloads.get('fmnist_fc')
  easy = type('EasyTarget', (type(base_workload),), {'target_value': 0.3})()
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission=spec, experiment_dir=str(tmp_path),
      train_size=500, chunk_size=500, max_steps=60, eval_every=5,
      log_every=5, quiet=True), workload=easy)
  summary = result.summary
  assert summary.status is records.Status.REACHED_TARGET
  assert summary.timed_compiles == 0
  assert summary.first_step_s > 0
  evaluations = records.read_run(result.run_dir).metrics
  assert summary.prepare_for_eval_s >= 0.02 * len(evaluations)
  # Stopped at the target: what was added by then is the run's whole.
  assert summary.time_to_target_s - summary.time_to_target_compile_free_s == (
      pytest.approx(summary.first_step_s + summary.prepare_for_eval_s))
  assert summary.submission_time_s == pytest.approx(
      summary.compile_free_time_s + summary.first_step_s +
      summary.prepare_for_eval_s)
  # Each evaluation's time holds the prepare_for_eval calls up to it.
  for k, evaluation in enumerate(evaluations):
    counted = evaluation.submission_time_s - evaluation.compile_free_time_s
    assert counted >= 0.02 * (k + 1)
  first = scores.check_target_claims(records.read_run(result.run_dir))
  assert first is not None and first.step == summary.steps_to_target
  score = scores.run_score(records.read_run(result.run_dir))
  assert score.time_to_target_s == summary.time_to_target_s
