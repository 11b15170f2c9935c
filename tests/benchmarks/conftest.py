"""The benchmarks' shared problem, built once per module."""

from __future__ import annotations

import pytest

from tests.benchmarks import fc_problem


@pytest.fixture(scope='module')
def problem():
  return fc_problem.make_problem()
