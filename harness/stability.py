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

References:
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022), Table 1 and Appendices A, C.
  J. Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at
  the Edge of Stability", ICLR 2021, arXiv:2103.00065.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Callable

import numpy as np


class Momentum(enum.Enum):
  """Kind of momentum in an update."""

  NONE = 'none'
  HEAVY_BALL = 'heavy_ball'
  NESTEROV = 'nesterov'


class Style(enum.Enum):
  """Parameterisation of the momentum buffer.

  STANDARD: m ← βm + g. EMA: m ← βm + (1 − β)g (Adam's first moment).
  """

  STANDARD = 'standard'
  EMA = 'ema'


Schedule = Callable[[int], float]


@dataclasses.dataclass(frozen=True)
class Dynamics:
  """The linear dynamics of an update rule, for its stability threshold.

  For a preconditioned method (Adam, ...) this describes the update with the
  preconditioner frozen; its threshold applies to λ1(P⁻¹H).

  Attributes:
    momentum: a `Momentum` (or its value, e.g. 'heavy_ball').
    style: a `Style` (or its value); ignored when momentum is NONE.
    beta: momentum coefficient, 0 ≤ β < 1; ignored when momentum is NONE.
    learning_rate: η > 0, or a schedule `step -> η`.
  """

  momentum: Momentum = Momentum.NONE
  style: Style = Style.STANDARD
  beta: float = 0.0
  learning_rate: float | Schedule = 1.0

  def __post_init__(self):
    object.__setattr__(self, 'momentum', Momentum(self.momentum))
    object.__setattr__(self, 'style', Style(self.style))
    if not 0.0 <= self.beta < 1.0:
      raise ValueError(f'beta must satisfy 0 <= beta < 1, got {self.beta}')
    if not callable(self.learning_rate):
      lr = float(self.learning_rate)
      if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f'learning_rate must be finite and > 0, got {lr}')

  def learning_rate_at(self, step: int) -> float:
    """η in force at `step` (a schedule may give 0, e.g. warmup start).

    Raises:
      ValueError: if a schedule gives a negative or non-finite value.
    """
    if not callable(self.learning_rate):
      return float(self.learning_rate)
    lr = float(self.learning_rate(step))
    if not (math.isfinite(lr) and lr >= 0):
      raise ValueError(
          f'learning rate schedule gave {lr} at step {step}; need >= 0')
    return lr

  @property
  def _key(self) -> tuple[Momentum, Style]:
    if self.momentum is Momentum.NONE:
      return (Momentum.NONE, Style.STANDARD)
    return (self.momentum, self.style)

  @property
  def _beta(self) -> float:
    return 0.0 if self.momentum is Momentum.NONE else self.beta


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


def threshold(dynamics: Dynamics, step: int = 0) -> float:
  """The largest stable eigenvalue (of H, or of P⁻¹H) at `step`.

  Uses the learning rate in force at `step`, so during warmup the threshold
  falls as η rises. Returns `inf` where η = 0.

  Args:
    dynamics: the update's `Dynamics`.
    step: the training step (only matters for a schedule).

  Returns:
    GD 2/η; standard HB (2+2β)/η; EMA HB (2+2β)/((1−β)η); standard Nesterov
    (2+2β)/((1+2β)η); EMA Nesterov (2+2β)/((1−β)(1+2β)η).
  """
  eta = dynamics.learning_rate_at(step)
  if eta == 0:
    return math.inf
  return _THRESHOLDS[dynamics._key](eta, dynamics._beta)


def characteristic_roots(dynamics: Dynamics, eigenvalue: float,
                         step: int = 0) -> np.ndarray:
  """Roots of the per-eigenvalue recurrence's characteristic polynomial.

  Args:
    dynamics: the update's `Dynamics`.
    eigenvalue: λ, an eigenvalue of H (or of P⁻¹H).
    step: the training step (only matters for a schedule).

  Returns:
    Complex roots: one for GD (first-order recurrence), two otherwise. The
    component along the eigenvector grows like the largest magnitude.
  """
  eta = dynamics.learning_rate_at(step)
  coeffs = _POLYNOMIALS[dynamics._key](eta, dynamics._beta, float(eigenvalue))
  return np.roots(np.asarray(coeffs, np.float64)).astype(np.complex128)


def spectral_radius(dynamics: Dynamics, eigenvalue: float,
                    step: int = 0) -> float:
  """Largest root magnitude: the asymptotic growth factor per step."""
  return float(np.max(np.abs(characteristic_roots(dynamics, eigenvalue,
                                                  step))))


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
                       *, x0: float = 1.0, m0: float = 0.0) -> np.ndarray:
  """Runs the update rule on f(x) = λx²/2; returns x_0, …, x_num_steps.

  Once |x| exceeds 1e300 the remaining entries are inf.
  """
  update = _UPDATES[dynamics._key]
  xs = np.empty(num_steps + 1)
  x, m = float(x0), float(m0)
  xs[0] = x
  for t in range(num_steps):
    x, m = update(x, m, eigenvalue * x, dynamics.learning_rate_at(t),
                  dynamics._beta)
    if not math.isfinite(x) or abs(x) > 1e300:
      xs[t + 1:] = math.inf
      break
    xs[t + 1] = x
  return xs
