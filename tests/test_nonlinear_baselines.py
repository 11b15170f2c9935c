"""Lion and Muon: updates nonlinear in the gradients, with no linear
threshold; their records say so rather than inventing one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from harness import stability
from scoring import aeos
from scoring import main_job
from submissions import loading


def _quadratic_updates(name, steps, hparams=None):
  """(params, grads, state before, updates) on f(x) = Σ a x² / 2 + ..."""
  submission = loading.load(name, hparams)
  a = {'w': jnp.linspace(0.5, 2.0, 12).reshape(4, 3),
       'b': jnp.array([1.5, -0.7, 0.3])}
  params = {'w': jnp.linspace(-1.0, 1.0, 12).reshape(4, 3),
            'b': jnp.ones(3)}
  tx = submission.optimizer
  state = tx.init(params)
  for _ in range(steps):
    grads = jax.tree.map(lambda x, ai: ai * x + 0.2 * x**3, params, a)
    updates, new_state = tx.update(grads, state, params)
    yield submission, params, grads, updates
    params, state = optax.apply_updates(params, updates), new_state


def test_lion_steps_by_the_sign_of_its_interpolated_momentum():
  m = None
  for submission, params, grads, updates in _quadratic_updates('lion', 5):
    h = submission.hparams
    m = jax.tree.map(jnp.zeros_like, grads) if m is None else m
    direction = jax.tree.map(
        lambda mi, g: jnp.sign(h['beta1'] * mi + (1 - h['beta1']) * g), m,
        grads)
    expected = jax.tree.map(
        lambda d, x: -h['learning_rate'] * (d + h['weight_decay'] * x),
        direction, params)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
      np.testing.assert_allclose(got, want, rtol=1e-6)
    m = jax.tree.map(lambda mi, g: h['beta2'] * mi + (1 - h['beta2']) * g,
                     m, grads)


def test_muon_orthogonalises_matrices_and_leaves_vectors_to_adam():
  *_, (submission, _, grads, updates) = _quadratic_updates('muon', 3)
  eta = submission.hparams['learning_rate']
  singular = np.linalg.svd(np.asarray(updates['w']) / eta, compute_uv=False)
  raw = np.linalg.svd(np.asarray(grads['w']), compute_uv=False)
  # Newton-Schulz flattens the spectrum: the gradient's is spread out,
  # the update's near one scale.
  assert raw[0] / raw[-1] > 5
  assert singular[0] / singular[-1] < 1.6
  # The vector is NAdam's: its first step moves each entry by
  # η (1 + β1 / (1 + β1)), Nesterov's look-ahead on a bias-corrected m.
  *_, (_, _, _, first) = _quadratic_updates('muon', 1)
  beta1 = submission.hparams['adam_beta1']
  np.testing.assert_allclose(np.abs(first['b']),
                             eta * (1 + beta1 / (1 + beta1)), rtol=1e-5)


@pytest.mark.parametrize('name', ['lion', 'muon'])
def test_no_linear_threshold_is_invented(name):
  dynamics = loading.load(name).dynamics()
  assert dynamics.nonlinearity
  with pytest.raises(ValueError, match='nonlinear'):
    stability.threshold(dynamics, 1e-3)
  with pytest.raises(ValueError, match='nonlinear'):
    stability.characteristic_roots(dynamics, 1.0, 1e-3)


def test_records_measure_sharpness_and_name_why_the_threshold_is_unknown(
    tmp_path):
  result = runner.train(config_lib.RunConfig(
      workload='fmnist_fc', submission='lion', experiment_dir=str(tmp_path),
      train_size=500, chunk_size=500, max_steps=6, eval_every=3, quiet=True,
      curvature=config_lib.CurvatureConfig(every=3, num_iterations=10)))
  run = records.read_run(result.run_dir)
  probes = [c for c in run.curvature if c.step in (3, 6)]
  assert len(probes) == 2
  for probe in probes:
    assert probe.sharpness > 0 and probe.preconditioned_sharpness is None
    assert probe.stability_threshold is None and probe.threshold_ratio is None
    assert 'nonlinear (the sign of an interpolated momentum (Lion))' in (
        probe.threshold_unknown)
  stats = aeos.aeos_stats(run.curvature, run.summary)
  assert stats.threshold_unknown == probes[0].threshold_unknown
  text = main_job.describe(main_job.DemoResult(run, stats, tmp_path / 'f'))
  assert (f'stability threshold: unknown: {probes[-1].threshold_unknown}'
          in text)
