"""Fig. 2: EMA heavy-ball on f(x) = x²/2 diverges exactly above 38/η.

The claim (Cohen et al., 2022, Fig. 2 and Table 1): with β = 0.9, EMA
heavy-ball (m ← βm + (1 − β)g, x ← x − ηm) on f(x) = x²/2, whose only
curvature is 1, converges for η below (2 + 2β)/(1 − β) = 38 and diverges
above it.

Measured with the `heavy_ball_ema` baseline's own optimizer, stepped
`num_steps` times from x = 1, m = 0 as one compiled scan with η read from
its state: η is bisected between `low` and `high` on whether |x| has grown
past 1, and the crossing is where it flips. Also drawn: |x_t| for four η
around 38, and the largest root magnitude of the recurrence's
characteristic polynomial (`harness.stability.characteristic_roots`).

Criterion: |crossing − 38| / 38 ≤ 1 / num_steps. Over N steps a mode that
grows by 1 + δ a step is told from one that decays only once Nδ is of
order 1, and near the threshold δ is of order (η − 38)/38: the steps, not
the bisection (16/2²⁴ at the default size), limit what can be resolved.
Measured: 4e-5 at N = 2,000, 4e-6 at N = 20,000, about 0.08/N.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness import stability
from scoring import figures
from scoring.paper_figures import _claim
from submissions import loading

BETA = 0.9
PREDICTED = (2 + 2 * BETA) / (1 - BETA)  # 38.
# Trajectories drawn: η on both sides of 38, over the first SHOWN_STEPS.
SHOWN = (36.0, 37.5, 38.5, 40.0)
SHOWN_STEPS = 600
CLAIM = 'EMA heavy-ball (β = 0.9) on x²/2 diverges exactly above η = 38'


@dataclasses.dataclass(frozen=True)
class Sizes:
  """num_steps per trajectory; bisection between low and high."""

  num_steps: int
  bisections: int
  low: float = 30.0
  high: float = 46.0


SCALES = {'tiny': Sizes(num_steps=2_000, bisections=16),
          'default': Sizes(num_steps=20_000, bisections=24)}
SCALES['paper'] = SCALES['default']  # Exact arithmetic: no larger size.


def _trajectory_fn(num_steps: int):
  """η -> |x_t| for t = 0..num_steps, with the baseline's optimizer."""
  submission = loading.load('heavy_ball_ema', {'learning_rate': 1.0,
                                               'beta1': BETA})
  tx = submission.optimizer

  @jax.jit
  def trajectory(learning_rate: jax.Array) -> jax.Array:
    x = jnp.ones((), jnp.float32)
    state = optax.tree_utils.tree_set(tx.init(x),
                                      learning_rate=learning_rate)

    def step(carry, _):
      x, state = carry
      updates, state = tx.update(x, state, x)  # The gradient of x²/2 is x.
      x = optax.apply_updates(x, updates)
      return (x, state), jnp.abs(x)

    _, path = jax.lax.scan(step, (x, state), None, length=num_steps)
    return jnp.concatenate([jnp.ones((1,)), path])

  return trajectory


def _diverges(trajectory, learning_rate: float) -> bool:
  end = float(trajectory(jnp.float32(learning_rate))[-1])
  return not end < 1.0  # NaN and inf count as diverged.


def measure(sizes: Sizes, experiment_dir: pathlib.Path
            ) -> tuple[_claim.Outcome, dict[str, Any]]:
  del experiment_dir  # Nothing is trained.
  trajectory = _trajectory_fn(sizes.num_steps)
  low, high = sizes.low, sizes.high
  if _diverges(trajectory, low) or not _diverges(trajectory, high):
    raise ValueError(f'the crossing is not between η = {low} and {high}')
  for _ in range(sizes.bisections):
    middle = (low + high) / 2
    low, high = (low, middle) if _diverges(trajectory, middle) else (
        middle, high)
  crossing = (low + high) / 2
  error = abs(crossing - PREDICTED) / PREDICTED
  tolerance = 1 / sizes.num_steps
  holds = error <= tolerance
  outcome = _claim.Outcome(
      figure='2',
      claim=CLAIM,
      criterion=f'|crossing − 38| / 38 ≤ 1 / num_steps = {tolerance:.2g}',
      holds=holds,
      verdict=(f'measured crossing η = {crossing:.7g} against 38: relative '
               f'error {error:.2g} ({"≤" if holds else ">"} {tolerance:.2g})'),
      rows=({'crossing': crossing, 'predicted': PREDICTED,
             'relative_error': error, 'tolerance': tolerance,
             'bracket': [low, high]},),
      settings=dataclasses.asdict(sizes))
  paths = {eta: np.asarray(trajectory(jnp.float32(eta)))[:SHOWN_STEPS + 1]
           for eta in SHOWN}
  return outcome, {'paths': paths, 'crossing': crossing}


def draw(measured: dict[str, Any]) -> Any:
  fig = figures.new_figure(10.0, 4.0)
  left, right = fig.subplots(1, 2)
  for eta, path in measured['paths'].items():
    steps = np.arange(path.size)
    shown = np.isfinite(path) & (path > 0)
    left.plot(steps[shown], path[shown], linewidth=1.2,
              label=f'η = {eta:g}' + (' (diverges)' if eta > PREDICTED
                                       else ''))
  left.set(yscale='log', xlabel='step', ylabel='|x|',
           title='EMA heavy-ball (β = 0.9) on x²/2')
  etas = np.linspace(30.0, 46.0, 321)
  dynamics = loading.load('heavy_ball_ema').dynamics()
  radius = [max(abs(stability.characteristic_roots(dynamics, 1.0, eta)))
            for eta in etas]
  right.plot(etas, radius, color='black', linewidth=1.2,
             label='largest root magnitude')
  right.axhline(1.0, color='grey', linewidth=0.8)
  right.axvline(PREDICTED, color='tab:blue', linestyle='--',
                label='(2 + 2β)/(1 − β) = 38')
  right.axvline(measured['crossing'], color='tab:red', linestyle=':',
                label=f'measured crossing {measured["crossing"]:.6g}')
  right.set(xlabel='learning rate η', ylabel='|root|',
            title='Where the recurrence turns unstable')
  for ax in (left, right):
    ax.grid(alpha=0.3, which='both')
  return _claim.finish(fig, 'Fig. 2: the edge of stability of EMA '
                       'heavy-ball, exactly')


FIGURE = _claim.PaperFigure(figure='2', claim=CLAIM,
                            scales=SCALES, measure=measure, draw=draw)
