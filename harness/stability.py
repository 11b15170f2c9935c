"""Stability thresholds of gradient methods with momentum (Cohen et al. 2022).

On a quadratic with Hessian H (or preconditioned Hessian P^-1/2 H P^-1/2),
GD, heavy-ball and Nesterov momentum, each in the "standard" or the "EMA"
parameterisation, act independently along each eigenvector as a linear
recurrence whose coefficients depend on the eigenvalue λ. The iteration is
stable while every root of that recurrence's characteristic polynomial has
magnitude < 1; the *threshold* is the λ at which the largest root reaches 1.

With a = ηλ the recurrences on f(x) = λx²/2 are (App. A and C of the paper):

  GD                x_{t+1} = (1 − a) x_t
  standard HB       x_{t+1} = (1 + β − a) x_t − β x_{t−1}
  standard Nesterov x_{t+1} = (1 + β)(1 − a) x_t − β(1 − a) x_{t−1}

and the EMA variants (m ← βm + (1 − β)g) are the standard ones with η
replaced by (1 − β)η. Setting the root −1 into the characteristic
polynomial gives the thresholds:

  GD 2/η;  HB (2 + 2β)/η;  Nesterov (2 + 2β)/((1 + 2β)η);
  EMA versions: divide by (1 − β) — 38/η (HB) and 13.57/η (Nesterov) at
  β = 0.9.

The update rule comes from a submission's `submissions.dynamics.Dynamics`
(momentum, style, β); the learning rate η is a separate argument, the value
in force at the step in question (the harness reads it from the optimizer
state), so during warmup the threshold falls as η rises. The simulation
takes η as a float or as a schedule `step -> η`, since it needs one per step.

A `Dynamics` whose `step_scale` is s steps by s·η rather than η (schedule-
free's gradient point moves by (1 − β) η once its average has settled);
every formula here then takes s·η for η, and s = 1 leaves them as above.

References:
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022), Table 1 and Appendices A, C.
  J. Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at
  the Edge of Stability", ICLR 2021, arXiv:2103.00065.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from submissions import dynamics as dynamics_lib

# The harness names these from here; submissions import submissions.dynamics.
Dynamics = dynamics_lib.Dynamics
Momentum = dynamics_lib.Momentum
Style = dynamics_lib.Style

Schedule = Callable[[int], float]


def _checked(learning_rate: float) -> float:
  """η as a float; 0 is allowed (e.g. the first step of a warmup)."""
  eta = float(learning_rate)
  if not (math.isfinite(eta) and eta >= 0):
    raise ValueError(f'learning_rate must be finite and >= 0, got {eta}')
  return eta


# Threshold on λ as a function of (η, β).
_THRESHOLDS: dict[tuple[Momentum, Style], Callable[[float, float], float]] = {
    (Momentum.NONE, Style.STANDARD):
        lambda eta, beta: 2.0 / eta,
    (Momentum.HEAVY_BALL, Style.STANDARD):
        lambda eta, beta: (2.0 + 2.0 * beta) / eta,
    (Momentum.HEAVY_BALL, Style.EMA):
        lambda eta, beta: (2.0 + 2.0 * beta) / ((1.0 - beta) * eta),
    (Momentum.NESTEROV, Style.STANDARD):
        lambda eta, beta: (2.0 + 2.0 * beta) / ((1.0 + 2.0 * beta) * eta),
    (Momentum.NESTEROV, Style.EMA):
        lambda eta, beta: (2.0 + 2.0 * beta) /
        ((1.0 - beta) * (1.0 + 2.0 * beta) * eta),
}


# Characteristic polynomial (highest degree first) of the recurrence along an
# eigenvector with eigenvalue λ, as a function of (η, β, λ).
def _gd(eta: float, beta: float, lam: float) -> list[float]:
  del beta
  return [1.0, -(1.0 - eta * lam)]


def _heavy_ball(eta: float, beta: float, lam: float) -> list[float]:
  return [1.0, -(1.0 + beta - eta * lam), beta]


def _nesterov(eta: float, beta: float, lam: float) -> list[float]:
  shrink = 1.0 - eta * lam
  return [1.0, -(1.0 + beta) * shrink, beta * shrink]


_POLYNOMIALS: dict[tuple[Momentum, Style],
                   Callable[[float, float, float], list[float]]] = {
    (Momentum.NONE, Style.STANDARD): _gd,
    (Momentum.HEAVY_BALL, Style.STANDARD): _heavy_ball,
    (Momentum.HEAVY_BALL, Style.EMA):
        lambda eta, beta, lam: _heavy_ball((1.0 - beta) * eta, beta, lam),
    (Momentum.NESTEROV, Style.STANDARD): _nesterov,
    (Momentum.NESTEROV, Style.EMA):
        lambda eta, beta, lam: _nesterov((1.0 - beta) * eta, beta, lam),
}


def _check_linear(dynamics: Dynamics) -> None:
  if dynamics.nonlinearity is not None:
    raise ValueError('no linear stability threshold: the update is '
                     f'nonlinear ({dynamics.nonlinearity})')


def threshold(dynamics: Dynamics, learning_rate: float) -> float:
  """The largest stable eigenvalue (of H, or of P⁻¹H) at learning rate η.

  Args:
    dynamics: the update's `Dynamics`.
    learning_rate: η in force at the step in question, finite and >= 0.

  Returns:
    GD 2/η; standard HB (2+2β)/η; EMA HB (2+2β)/((1−β)η); standard Nesterov
    (2+2β)/((1+2β)η); EMA Nesterov (2+2β)/((1−β)(1+2β)η), with η times
    `dynamics.step_scale` for η. `inf` where η = 0: every curvature is
    stable then.

  Raises:
    ValueError: if `learning_rate` is negative or not finite, or the update
      is nonlinear (`dynamics.nonlinearity`), which has no such threshold.
  """
  eta = _checked(learning_rate) * dynamics.step_scale
  _check_linear(dynamics)
  if eta == 0:
    return math.inf
  return _THRESHOLDS[dynamics.kind](eta, dynamics.effective_beta)


def characteristic_roots(dynamics: Dynamics, eigenvalue: float,
                         learning_rate: float) -> np.ndarray:
  """Roots of the per-eigenvalue recurrence's characteristic polynomial.

  Args:
    dynamics: the update's `Dynamics`.
    eigenvalue: λ, an eigenvalue of H (or of P⁻¹H).
    learning_rate: η, finite and >= 0 (the recurrence steps by η times
      `dynamics.step_scale`).

  Returns:
    Complex roots: one for GD (first-order recurrence), two otherwise. The
    component along the eigenvector grows like the largest magnitude.
  """
  _check_linear(dynamics)
  eta = _checked(learning_rate) * dynamics.step_scale
  coeffs = _POLYNOMIALS[dynamics.kind](eta, dynamics.effective_beta,
                                       float(eigenvalue))
  return np.roots(np.asarray(coeffs, np.float64)).astype(np.complex128)


def spectral_radius(dynamics: Dynamics, eigenvalue: float,
                    learning_rate: float) -> float:
  """Largest root magnitude: the asymptotic growth factor per step."""
  return float(np.max(np.abs(characteristic_roots(dynamics, eigenvalue,
                                                  learning_rate))))


# One step of each update rule on f(x) = λx²/2 (g = λx), as written in the
# paper's Table 1, for simulation independent of the recurrences above.
def _step_gd(x, m, g, eta, beta):
  del beta
  return x - eta * g, m


def _step_hb(x, m, g, eta, beta):
  m = beta * m + g
  return x - eta * m, m


def _step_ema_hb(x, m, g, eta, beta):
  m = beta * m + (1 - beta) * g
  return x - eta * m, m


def _step_nesterov(x, m, g, eta, beta):
  m = beta * m + g
  return x - eta * (beta * m + g), m


def _step_ema_nesterov(x, m, g, eta, beta):
  m = beta * m + (1 - beta) * g
  return x - eta * (beta * m + (1 - beta) * g), m


_UPDATES = {
    (Momentum.NONE, Style.STANDARD): _step_gd,
    (Momentum.HEAVY_BALL, Style.STANDARD): _step_hb,
    (Momentum.HEAVY_BALL, Style.EMA): _step_ema_hb,
    (Momentum.NESTEROV, Style.STANDARD): _step_nesterov,
    (Momentum.NESTEROV, Style.EMA): _step_ema_nesterov,
}


def simulate_quadratic(dynamics: Dynamics, eigenvalue: float, num_steps: int,
                       *, learning_rate: float | Schedule, x0: float = 1.0,
                       m0: float = 0.0) -> np.ndarray:
  """Runs the update rule on f(x) = λx²/2; returns x_0, …, x_num_steps.

  Args:
    dynamics: the update's `Dynamics`.
    eigenvalue: λ.
    num_steps: number of updates.
    learning_rate: η, or a schedule `step -> η` (step t makes x_{t+1});
      each step is η times `dynamics.step_scale`.
    x0: starting point.
    m0: starting momentum buffer.

  Returns:
    The iterates; once |x| exceeds 1e300 the remaining entries are inf.

  Raises:
    ValueError: if η, or a schedule's value at some step, is negative or not
      finite.
  """
  if callable(learning_rate):
    schedule = learning_rate
  else:
    eta = _checked(learning_rate)
    schedule = lambda step: eta  # noqa: E731
  update = _UPDATES[dynamics.kind]
  xs = np.empty(num_steps + 1)
  x, m = float(x0), float(m0)
  xs[0] = x
  for t in range(num_steps):
    eta_t = float(schedule(t))
    if not (math.isfinite(eta_t) and eta_t >= 0):
      raise ValueError(
          f'learning rate schedule gave {eta_t} at step {t}; need >= 0')
    x, m = update(x, m, eigenvalue * x, eta_t * dynamics.step_scale,
                  dynamics.effective_beta)
    if not math.isfinite(x) or abs(x) > 1e300:
      xs[t + 1:] = math.inf
      break
    xs[t + 1] = x
  return xs
