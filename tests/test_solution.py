"""The solution step found on the device at every step (harness.solution)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from harness import solution
import workloads

THRESHOLD = 0.6  # Reached by Adam on 1,000 images in a few dozen steps.


def _donating_step():
  return jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s),
                 donate_argnums=0)


def test_the_latch_keeps_the_state_the_first_low_loss_was_computed_at():
  state = ({'w': jnp.arange(3.0)}, jnp.zeros(2, jnp.int32), {})
  latch = solution.SolutionLatch(0.3, state, 5, keep_state=True)
  step = _donating_step()
  for loss in (1.0, 0.5, 0.25, 0.1):  # Steps 5, 6, 7, 8: 7 is first below.
    state = step(state)  # The state the loss was computed at is donated.
    latch.after_update(jnp.float32(loss), state)
  found = latch.found()
  assert found.step == 7 and latch.measured_through == 8
  params, counts, _ = found.state
  assert params['w'].tolist() == [2.0, 3.0, 4.0]  # Two updates after step 5.
  assert counts.tolist() == [2, 2]


def test_the_latch_finds_nothing_above_the_threshold_and_keeps_no_state():
  state = {'w': jnp.ones(4)}
  latch = solution.SolutionLatch(0.3, state, 0, keep_state=False)
  step = _donating_step()
  for loss in (1.0, 0.3, 0.5):  # Not strictly below.
    state = step(state)
    latch.after_update(jnp.float32(loss), state)
  assert latch.found() is None
  state = step(state)
  latch.after_update(jnp.float32(0.2), state)
  assert latch.found() == solution.Found(3, None)


class _LowBar(type(workloads.get('fmnist_fc'))):
  train_loss_threshold = THRESHOLD


def _run(tmp_path, name, **overrides):
  fields = dict(workload='fmnist_fc', submission='adam',
                experiment_dir=str(tmp_path / name), train_size=1000,
                chunk_size=500, max_steps=60, eval_every=1000, log_every=16,
                quiet=True, stop_at_target=False,
                curvature=config_lib.CurvatureConfig(at_events=True))
  result = runner.train(config_lib.RunConfig(**{**fields, **overrides}),
                        workload=_LowBar())
  return result, records.read_run(result.run_dir)


def test_full_batch_solution_is_exact_and_probed_there(tmp_path):
  """Judged at every step with no evaluation near it, the solution step and
  its probe are those of a run that evaluates after every step."""
  exact, exact_run = _run(tmp_path, 'every_step')
  evaluated, evaluated_run = _run(tmp_path, 'evaluated', eval_every=1,
                                  log_every=1)
  step = exact.summary.solution_step
  assert step is not None and step == evaluated.summary.solution_step
  assert step % 16 and step < 60  # Neither a synchronisation nor the end.
  (probe,) = [p for p in exact_run.curvature
              if p.reason is records.ProbeReason.SOLUTION]
  (reference,) = [p for p in evaluated_run.curvature
                  if p.reason is records.ProbeReason.SOLUTION]
  assert probe.step == reference.step == step
  assert probe.train_loss < THRESHOLD
  assert probe.sharpness == pytest.approx(reference.sharpness, rel=1e-3)
  assert probe.preconditioned_sharpness == pytest.approx(
      reference.preconditioned_sharpness, rel=1e-3)
  assert exact.summary.sharpness_at_solution == probe.sharpness
  assert [p.step for p in exact_run.curvature] == sorted(
      p.step for p in exact_run.curvature)
  assert exact.summary.timed_compiles == 0


def test_minibatch_solution_is_judged_at_evaluations(tmp_path):
  result, run = _run(tmp_path, 'minibatch', full_batch=False, batch_size=100,
                     chunk_size=100,
                     eval_every=10, max_steps=80)
  step = result.summary.solution_step
  assert step is not None and step % 10 == 0
  first_low = next(e.step for e in run.metrics
                   if e.train_loss < THRESHOLD)
  assert step == first_low
