"""The evaluator: splits kept on the devices or streamed from the host."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from harness import evaluation
from harness import mesh as mesh_lib
from workloads import base
from workloads import registry


@pytest.fixture(scope='module')
def setup():
  workload = registry.get('fmnist_fc')
  regime = base.BatchRegime(full_batch=True, train_size=500, batch_size=500,
                            chunk_size=500)
  dataset = workload.dataset(regime)
  params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
  return workload, dataset, mesh_lib.DataParallel.over_all_devices(), (
      params, model_state)


def test_budget_decides_which_splits_stay_on_the_devices(setup):
  workload, dataset, parallel, _ = setup
  everything = evaluation.Evaluator(workload, dataset, parallel)
  nothing = evaluation.Evaluator(workload, dataset, parallel,
                                 resident_bytes=0)
  assert set(everything.resident) == set(dataset.eval_splits)
  assert not everything.streamed
  assert set(nothing.streamed) == set(dataset.eval_splits)
  assert not nothing.resident
  for arrays in nothing.streamed.values():
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(arrays))
  with pytest.raises(ValueError, match='resident_bytes'):
    evaluation.Evaluator(workload, dataset, parallel, resident_bytes=-1)


def test_streamed_metrics_equal_resident_metrics(setup):
  workload, dataset, parallel, (params, model_state) = setup
  resident = evaluation.Evaluator(workload, dataset, parallel)
  streamed = evaluation.Evaluator(workload, dataset, parallel,
                                  resident_bytes=0)
  want = resident(params, model_state)
  got = streamed(params, model_state)
  assert got.keys() == want.keys()
  assert {k.split('/')[0] for k in got} == set(dataset.eval_splits)
  for name in want:
    assert got[name] == pytest.approx(want[name], rel=1e-6), name
  # Every example counted once, padding not at all.
  for split, arrays in streamed.streamed.items():
    totals = streamed._streamed_totals(params, model_state, arrays)
    assert float(totals['count']) == float(arrays['weights'].sum()), split
