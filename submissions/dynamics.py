"""What a submission says about its update's linear dynamics.

A submission's `dynamics(hyperparameters)` hook returns a `Dynamics`: the
kind of momentum, its parameterisation and β, the facts that the optimizer
state does not hold. The learning rate is not part of it: the harness reads
η from the optimizer state (`api.Submission.learning_rate`), so a schedule
is given once, to the optimizer. `harness.stability` turns a `Dynamics` and
an η into the stability threshold.

References:
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022), Table 1.
"""

from __future__ import annotations

import dataclasses
import enum
import math


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


@dataclasses.dataclass(frozen=True)
class Dynamics:
  """The linear dynamics of an update rule, less its learning rate.

  For a preconditioned method (Adam, ...) this describes the update with the
  preconditioner frozen; its threshold applies to λ1(P⁻¹H).

  Attributes:
    momentum: a `Momentum` (or its value, e.g. 'heavy_ball').
    style: a `Style` (or its value); ignored when momentum is NONE.
    beta: momentum coefficient, 0 ≤ β < 1; ignored when momentum is NONE.
    nonlinearity: what makes the update nonlinear in the gradients, when it
      is (Lion's sign, Muon's orthogonalisation): momentum and β then
      describe the buffer, and no linear stability threshold applies, so
      the records report the threshold as unknown with this reason.
    step_scale: the update's effective step is this times the learning rate
      in force, η; the thresholds and recurrences use step_scale · η.
      1 for every update that steps by η itself. Schedule-free's gradient
      point y moves by (1 − β) η times the gradient once its average has
      settled, so it gives 1 − β (`submissions.baselines.
      schedule_free_adamw`). Finite and > 0.
  """

  momentum: Momentum = Momentum.NONE
  style: Style = Style.STANDARD
  beta: float = 0.0
  nonlinearity: str | None = None
  step_scale: float = 1.0

  def __post_init__(self):
    object.__setattr__(self, 'momentum', Momentum(self.momentum))
    object.__setattr__(self, 'style', Style(self.style))
    if not 0.0 <= self.beta < 1.0:
      raise ValueError(f'beta must satisfy 0 <= beta < 1, got {self.beta}')
    object.__setattr__(self, 'step_scale', float(self.step_scale))
    if not (math.isfinite(self.step_scale) and self.step_scale > 0):
      raise ValueError(
          f'step_scale must be finite and > 0, got {self.step_scale}')

  @property
  def kind(self) -> tuple[Momentum, Style]:
    """(momentum, style), the style fixed to STANDARD without momentum."""
    if self.momentum is Momentum.NONE:
      return (Momentum.NONE, Style.STANDARD)
    return (self.momentum, self.style)

  @property
  def effective_beta(self) -> float:
    """β as the update uses it: 0 without momentum."""
    return 0.0 if self.momentum is Momentum.NONE else self.beta
