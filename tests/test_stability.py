"""Tests of harness.stability: thresholds, recurrences, simulation, Dynamics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness import stability
from submissions.dynamics import Dynamics, Momentum, Style

ALL_DYNAMICS = [
    (Momentum.NONE, Style.STANDARD),
    (Momentum.HEAVY_BALL, Style.STANDARD),
    (Momentum.HEAVY_BALL, Style.EMA),
    (Momentum.NESTEROV, Style.STANDARD),
    (Momentum.NESTEROV, Style.EMA),
]
BETAS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99]
ETAS = [1e-4, 0.01, 1.0, 3.0]


@pytest.mark.parametrize('momentum, style', ALL_DYNAMICS)
def test_largest_root_crosses_one_at_threshold(momentum, style):
  for beta, eta in itertools.product(BETAS, ETAS):
    dyn = Dynamics(momentum, style, beta)
    lam = stability.threshold(dyn, eta)
    below = stability.spectral_radius(dyn, 0.999 * lam, eta)
    at = stability.spectral_radius(dyn, lam, eta)
    above = stability.spectral_radius(dyn, 1.001 * lam, eta)
    context = f'{momentum} {style} beta={beta} eta={eta}'
    assert below < 1, context
    assert above > 1, context
    assert abs(at - 1) < 1e-6, context


@pytest.mark.parametrize('momentum, style', ALL_DYNAMICS)
def test_roots_below_one_on_the_whole_stable_range(momentum, style):
  for beta in BETAS:
    dyn = Dynamics(momentum, style, beta)
    lam = stability.threshold(dyn, 0.5)
    radii = [stability.spectral_radius(dyn, f * lam, 0.5)
             for f in np.linspace(0.01, 0.999, 60)]
    assert max(radii) < 1


def test_threshold_formulas():
  eta, beta = 0.02, 0.9
  want = {
      (Momentum.NONE, Style.STANDARD): 2 / eta,
      (Momentum.NONE, Style.EMA): 2 / eta,  # Style ignored without momentum.
      (Momentum.HEAVY_BALL, Style.STANDARD): (2 + 2 * beta) / eta,
      (Momentum.HEAVY_BALL, Style.EMA): (2 + 2 * beta) / ((1 - beta) * eta),
      (Momentum.NESTEROV, Style.STANDARD):
          (2 + 2 * beta) / ((1 + 2 * beta) * eta),
      (Momentum.NESTEROV, Style.EMA):
          (2 + 2 * beta) / ((1 - beta) * (1 + 2 * beta) * eta),
  }
  for (momentum, style), value in want.items():
    dyn = Dynamics(momentum, style, beta)
    assert stability.threshold(dyn, eta) == pytest.approx(value, rel=1e-12)
  # Beta is ignored without momentum too.
  assert stability.threshold(Dynamics(Momentum.NONE, beta=0.9), 0.5) == 4.0


def test_paper_constants_at_beta_0_9():
  ema_hb = Dynamics(Momentum.HEAVY_BALL, Style.EMA, 0.9)
  ema_nesterov = Dynamics(Momentum.NESTEROV, Style.EMA, 0.9)
  assert stability.threshold(ema_hb, 1.0) == pytest.approx(38.0, rel=1e-12)
  assert stability.threshold(ema_nesterov, 1.0) == pytest.approx(13.5714,
                                                                 abs=1e-4)
  assert round(stability.threshold(ema_nesterov, 1.0), 2) == 13.57
  for eta in [1e-5, 3e-4, 0.1]:
    dyn = Dynamics('heavy_ball', 'ema', 0.9)
    assert stability.threshold(dyn, eta) == pytest.approx(38 / eta, rel=1e-12)


def test_recurrences_match_simulated_updates():
  # The recurrence along an eigenvector, from the characteristic polynomial,
  # predicts the simulated update rule: for a two-root recurrence x_t is a
  # combination of r1^t and r2^t fitted to x_0, x_1.
  for (momentum, style), beta in itertools.product(ALL_DYNAMICS, [0.0, 0.8]):
    dyn = Dynamics(momentum, style, beta)
    lam = 0.7 * stability.threshold(dyn, 0.1)
    xs = stability.simulate_quadratic(dyn, lam, 40, learning_rate=0.1)
    poly = np.poly(stability.characteristic_roots(dyn, lam, 0.1)).real
    order = len(poly) - 1
    for t in range(order, 41):
      # x_t = -(p1 x_{t-1} + ... + p_order x_{t-order}).
      pred = -sum(poly[i] * xs[t - i] for i in range(1, order + 1))
      assert xs[t] == pytest.approx(pred, rel=1e-9, abs=1e-12), (
          momentum, style, beta, t)


def test_ema_heavy_ball_on_quadratic_diverges_above_38():
  # Paper Fig. 2: f(x) = x²/2, x0 = 1, m0 = 0, β = 0.9.
  dyn = Dynamics(Momentum.HEAVY_BALL, Style.EMA, 0.9)
  diverging = stability.simulate_quadratic(dyn, 1.0, 3000, learning_rate=38.1)
  converging = stability.simulate_quadratic(dyn, 1.0, 3000, learning_rate=37.9)
  assert np.max(np.abs(diverging)) > 1e3
  assert abs(converging[-1]) < 1e-3
  assert np.max(np.abs(converging[-100:])) < 1e-3


def test_each_update_rule_diverges_just_above_its_threshold():
  for (momentum, style), beta in itertools.product(ALL_DYNAMICS, [0.5, 0.9]):
    dyn = Dynamics(momentum, style, beta)
    lam = stability.threshold(dyn, 0.01)
    above = stability.simulate_quadratic(dyn, 1.01 * lam, 5000,
                                         learning_rate=0.01)
    below = stability.simulate_quadratic(dyn, 0.99 * lam, 5000,
                                         learning_rate=0.01)
    assert np.max(np.abs(above[-10:])) > 1e3, (momentum, style, beta)
    assert np.max(np.abs(below[-10:])) < 1e-3, (momentum, style, beta)


def test_warmup_threshold_falls_as_learning_rate_rises():
  peak, warmup = 1e-3, 100
  schedule = lambda step: peak * min(1.0, (step + 1) / warmup)
  dyn = Dynamics(Momentum.HEAVY_BALL, Style.EMA, 0.9)
  steps = list(range(0, 150, 10))
  values = [stability.threshold(dyn, schedule(s)) for s in steps]
  assert all(a > b for a, b in zip(values[:10], values[1:10]))
  assert values[-1] == pytest.approx(38 / peak)
  assert values[0] == pytest.approx(38 / (peak / warmup))
  assert stability.threshold(dyn, schedule(49)) == pytest.approx(
      38 / (peak / 2))
  # A warmup that starts at exactly zero: every curvature is stable.
  zero_start = lambda step: peak * step / warmup
  assert stability.threshold(Dynamics(), zero_start(0)) == math.inf


@pytest.mark.parametrize('beta', [-0.1, 1.0])
def test_validation(beta):
  with pytest.raises(ValueError, match='beta'):
    Dynamics(Momentum.HEAVY_BALL, Style.EMA, beta)


@pytest.mark.parametrize('learning_rate', [-1.0, math.nan, math.inf])
def test_learning_rate_validation(learning_rate):
  dyn = Dynamics(Momentum.HEAVY_BALL, Style.EMA, 0.9)
  with pytest.raises(ValueError, match='learning_rate'):
    stability.threshold(dyn, learning_rate)
  with pytest.raises(ValueError, match='learning_rate'):
    stability.spectral_radius(dyn, 1.0, learning_rate)
  with pytest.raises(ValueError, match='learning_rate'):
    stability.simulate_quadratic(dyn, 1.0, 3, learning_rate=learning_rate)


def test_validation_of_names_and_schedules():
  with pytest.raises(ValueError):
    Dynamics('adam')
  with pytest.raises(ValueError):
    Dynamics(Momentum.HEAVY_BALL, 'exponential')
  # A schedule that turns negative at step 3 fails there, naming the step.
  schedule = lambda step: 1e-3 if step < 3 else -1.0
  with pytest.raises(ValueError, match='schedule gave -1.0 at step 3'):
    stability.simulate_quadratic(Dynamics(), 1.0, 10, learning_rate=schedule)
  assert Dynamics('nesterov', 'ema', 0.9).momentum is Momentum.NESTEROV


def test_dynamics_is_frozen():
  dyn = Dynamics()
  with pytest.raises(AttributeError):
    dyn.beta = 0.5  # type: ignore[misc]


def test_simulation_follows_a_schedule_step_by_step():
  # Warmup from 0: x stays put at step 0, then contracts by (1 − η_t λ).
  schedule = lambda step: 0.1 * step
  xs = stability.simulate_quadratic(Dynamics(), 2.0, 3, learning_rate=schedule)
  np.testing.assert_allclose(xs, [1.0, 1.0, 0.8, 0.48], rtol=1e-12)


def test_harness_names_are_the_submission_types():
  assert stability.Dynamics is Dynamics
  assert stability.Momentum is Momentum and stability.Style is Style
