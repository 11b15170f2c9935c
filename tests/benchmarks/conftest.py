"""The benchmarks' shared problem, built once per module."""

from __future__ import annotations

import pytest

from tests.benchmarks import fc_problem
from tests.test_curvature import tanh_mlp_loss


@pytest.fixture(scope='module')
def problem():
  return fc_problem.make_problem()


@pytest.fixture(scope='session')
def trained_problem():
  """The second problem: trained weights on real images (about half a
  minute of training, once per session)."""
  return fc_problem.make_trained_problem(tanh_mlp_loss)
