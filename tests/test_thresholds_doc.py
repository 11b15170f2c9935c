"""docs/thresholds.md against the code: one row per baseline, each with the
threshold `harness.stability` computes at the shipped defaults."""

from __future__ import annotations

import pathlib
import re

import jax.numpy as jnp
import pytest

from harness import stability
from submissions import eigenbasis
from submissions import loading

DOC = pathlib.Path(__file__).parent.parent / 'docs' / 'thresholds.md'
_ROW = re.compile(r'^\| `(\w+)` \| (.+?) \| (.+?) \| (.+?) \| (\w+) \|$')


def _rows() -> dict[str, tuple[str, str, str, str]]:
  rows = {}
  for line in DOC.read_text().splitlines():
    match = _ROW.match(line)
    if match:
      name, *cells = match.groups()
      assert name not in rows, f'{name} has two rows'
      rows[name] = tuple(cells)
  return rows


def test_every_baseline_has_one_row():
  assert set(_rows()) == set(loading.BASELINES)


@pytest.mark.parametrize('name', sorted(loading.BASELINES))
def test_row_matches_the_code(name):
  momentum, value, measured_on, standing = _rows()[name]
  submission = loading.load(name)
  dynamics = submission.dynamics()
  beta = re.search(r'\((0\.\d+)\)', momentum)
  if beta:
    assert float(beta.group(1)) == dynamics.beta
  if value == 'unknown':
    assert dynamics.nonlinearity and standing == 'unknown'
    with pytest.raises(ValueError, match='nonlinear'):
      stability.threshold(dynamics, 1.0)
  else:
    assert standing in ('published', 'extrapolated', 'derived')
    eta = submission.hparams['learning_rate']
    shown = float(value) / eta
    assert stability.threshold(dynamics, eta) == pytest.approx(shown,
                                                               rel=1e-3)
  state = submission.init_optimizer_state(
      None, {'w': jnp.ones((3, 2))}, None, None)
  hook = submission.preconditioner(state)
  assert measured_on.startswith('λ1(H)') == (hook is None)
  assert ('not diagonal' in measured_on) == isinstance(
      hook, eigenbasis.EigenbasisPreconditioner)
