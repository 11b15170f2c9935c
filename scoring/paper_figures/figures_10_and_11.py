"""Figs. 10 and 11: the sharpness of the solution Adam finds.

The claims (Cohen et al., 2022, §§6-7):
- Fig. 10: full-batch Adam finds sharper solutions when η is smaller
  (β2 fixed) and when β2 is smaller (η fixed).
- Fig. 11: at comparable training speed, Adam finds a sharper solution
  than EMA heavy-ball momentum: for each, smaller η trains longer and ends
  sharper, but at equal steps to solution Adam's λ1(H) is the larger.

"Solution" is the first step whose training loss is below the workload's
threshold, found at every step of the full-batch runs
(`harness.solution`), and λ1(H) is measured at that very step: the
`sharpness_at_solution` of the summary.

Measured with `adam_nobc` (β1 = 0.9) over an η sweep at β2 = 0.999 and a
β2 sweep at one η, and `heavy_ball_ema` (β1 = 0.9) over an η sweep, all
trained full-batch on the FC network as suites (`_sweep`); the runs probe
only at their events (the solution and the end). Fig. 11 reads Adam's η
sweep, the same runs as Fig. 10's.

Criteria. Every run reaches the solution. At the edge of stability λ1
oscillates about its equilibrium by up to ±`aeos.BAND` (Fig. 1), so one
solution's sharpness can sit anywhere in that band: a trend is claimed
only beyond twice it, 1 + 2 × 0.15 = 1.3, and one swap of neighbours is
allowed.
- Fig. 10, for each sweep: the rank correlation between the swept value
  and λ1(H) at solution is ≤ −0.8 (with four points: monotone but for one
  swap of neighbours), and λ1(H) at the smallest value is ≥ 1.3 × that at
  the largest.
- Fig. 11: at each of Adam's points whose steps to solution lie within
  momentum's, Adam's λ1(H) at solution is ≥ 1.3 × momentum's at the same
  steps (interpolated linearly in log steps and log λ1 between momentum's
  neighbouring points), at two such points at least.
"""

from __future__ import annotations

import dataclasses
import fractions
import pathlib
from typing import Any, Sequence

from matplotlib import ticker
import numpy as np

from scoring import aeos
from scoring import figures
from scoring.paper_figures import _claim
from scoring.paper_figures import _sweep

ADAM, MOMENTUM = 'adam_nobc', 'heavy_ball_ema'
TREND = 1 + 2 * aeos.BAND
RANK_CORRELATION = fractions.Fraction(-4, 5)
CLAIM_10 = ('full-batch Adam finds sharper solutions at smaller η and at '
            'smaller β2')
CLAIM_11 = ('at equal steps to solution, Adam finds sharper solutions than '
            'momentum')


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The sweeps and the runs' sizes."""

  adam_learning_rates: tuple[float, ...]  # At β2 = 0.999.
  beta2s: tuple[float, ...]  # At η = beta2_learning_rate.
  beta2_learning_rate: float
  momentum_learning_rates: tuple[float, ...]
  workload: str = 'fmnist_fc'
  train_size: int = 2000
  steps: int = 1000


SCALES = {
    # Solutions within 20-80 steps (measured), before any run is at the
    # edge: the η trend shows; the β2 trend and momentum's do not.
    'tiny': Sizes(adam_learning_rates=(5e-5, 4e-4), beta2s=(0.8, 0.999),
                  beta2_learning_rate=4e-4,
                  momentum_learning_rates=(0.2, 1.0), train_size=500,
                  steps=150),
    'default': Sizes(adam_learning_rates=(2.5e-5, 5e-5, 1e-4, 2e-4),
                     beta2s=(0.9, 0.99, 0.999), beta2_learning_rate=5e-5,
                     momentum_learning_rates=(0.05, 0.1, 0.2, 0.38),
                     workload='fmnist_fc_mse', steps=1200),
    # Figs. 10 and 11 (left): the Wide ResNet on CIFAR-100, full batch,
    # to train loss 0.1 (the workload's threshold); Fig. 10's β2 sweep at
    # η = 1e-4 (Appendix G).
    'paper': Sizes(adam_learning_rates=tuple(np.logspace(-5, -4, 5)),
                   beta2s=(0.9, 0.99, 0.995, 0.999), beta2_learning_rate=1e-4,
                   momentum_learning_rates=tuple(np.logspace(-2, -1, 5)),
                   workload='cifar100_wrn', train_size=5000, steps=5000),
}


def _adam_points(sizes: Sizes) -> list[dict[str, float]]:
  points = [{'learning_rate': eta, 'beta1': 0.9, 'beta2': 0.999}
            for eta in sizes.adam_learning_rates]
  points += [{'learning_rate': sizes.beta2_learning_rate, 'beta1': 0.9,
              'beta2': beta2} for beta2 in sizes.beta2s]
  unique = {tuple(sorted(p.items())): p for p in points}
  return list(unique.values())


def _train(submission: str, points: Sequence[dict], sizes: Sizes,
           experiment_dir: pathlib.Path) -> list[dict[str, Any]]:
  """Each point's run, as a row: its hyperparameters and its solution."""
  runs = _sweep.run(submission, sizes.workload, points, _sweep.full_batch(
      sizes.workload, submission, experiment_dir / f'{submission}_solutions',
      train_size=sizes.train_size, steps=sizes.steps, curvature_every=0))
  return [{'submission': submission, **point,
           'status': run.summary.status.value,
           'solution_step': run.summary.solution_step,
           'sharpness_at_solution': run.summary.sharpness_at_solution,
           'preconditioned_sharpness_at_solution':
               run.summary.preconditioned_sharpness_at_solution,
           'run': str(run.path)} for point, run in zip(points, runs)]


def _rank_correlation(x: Sequence[float], y: Sequence[float]
                      ) -> fractions.Fraction:
  """Spearman's ρ = 1 − 6 Σd² / (n (n² − 1)) over the ranks (no ties), in
  exact arithmetic: one swap of neighbours among four points is −0.8
  itself, which floating point would put on either side of the bound."""
  rank_x, rank_y = (np.argsort(np.argsort(v)) for v in (x, y))
  n = len(x)
  squares = sum(int(a - b) ** 2 for a, b in zip(rank_x, rank_y))
  return 1 - fractions.Fraction(6 * squares, n * (n * n - 1))


def _trend(rows: Sequence[dict], key: str) -> dict[str, Any]:
  """How λ1(H) at solution falls along one sweep."""
  rows = sorted(rows, key=lambda r: r[key])
  sharpness = [r['sharpness_at_solution'] for r in rows]
  if any(s is None for s in sharpness) or len(rows) < 2:
    return {'swept': key, 'rank_correlation': None, 'fall': None,
            'holds': False}
  rho = _rank_correlation([r[key] for r in rows], sharpness)
  fall = sharpness[0] / sharpness[-1]
  return {'swept': key, 'rank_correlation': float(rho), 'fall': fall,
          'holds': rho <= RANK_CORRELATION and fall >= TREND}


def _sweeps(sizes: Sizes, rows: Sequence[dict]) -> tuple[list, list]:
  adam = [r for r in rows if r['submission'] == ADAM]
  by_eta = [r for r in adam if r['beta2'] == 0.999 and
            r['learning_rate'] in sizes.adam_learning_rates]
  by_beta2 = [r for r in adam if r['learning_rate'] ==
              sizes.beta2_learning_rate and r['beta2'] in sizes.beta2s]
  return by_eta, by_beta2


def _describe(trend: dict[str, Any]) -> str:
  if trend['rank_correlation'] is None:
    return f'{trend["swept"]}: a run found no solution'
  return (f'{trend["swept"]}: ρ = {trend["rank_correlation"]:.2f}, λ1 at the '
          f'smallest / at the largest = {trend["fall"]:.2f}')


def measure_10(sizes: Sizes, experiment_dir: pathlib.Path):
  rows = _train(ADAM, _adam_points(sizes), sizes, experiment_dir)
  by_eta, by_beta2 = _sweeps(sizes, rows)
  trends = (_trend(by_eta, 'learning_rate'), _trend(by_beta2, 'beta2'))
  outcome = _claim.Outcome(
      figure='10', claim=CLAIM_10,
      criterion=(f'along each sweep: rank correlation of λ1(H) at solution '
                 f'with the swept value ≤ {float(RANK_CORRELATION)}, and λ1 '
                 f'at the smallest value ≥ {TREND:g} × at the largest'),
      holds=all(t['holds'] for t in trends),
      verdict='; '.join(_describe(t) for t in trends),
      rows=tuple(rows) + trends, settings=dataclasses.asdict(sizes))
  return outcome, (by_eta, by_beta2)


def _at_equal_speed(adam: Sequence[dict], momentum: Sequence[dict]
                    ) -> list[dict[str, Any]]:
  """Adam's points within momentum's steps to solution, each with
  momentum's λ1 at solution interpolated at the same steps."""
  solved = sorted((r for r in momentum if r['solution_step'] is not None),
                  key=lambda r: r['solution_step'])
  if len(solved) < 2:
    return []
  log_steps = np.log([r['solution_step'] for r in solved])
  log_sharpness = np.log([r['sharpness_at_solution'] for r in solved])
  pairs = []
  for row in adam:
    step = row['solution_step']
    if step is None or not log_steps[0] <= np.log(step) <= log_steps[-1]:
      continue
    reference = float(np.exp(np.interp(np.log(step), log_steps,
                                       log_sharpness)))
    pairs.append({'learning_rate': row['learning_rate'], 'solution_step': step,
                  'adam_sharpness': row['sharpness_at_solution'],
                  'momentum_sharpness': reference,
                  'ratio': row['sharpness_at_solution'] / reference})
  return pairs


def measure_11(sizes: Sizes, experiment_dir: pathlib.Path):
  adam_rows = _train(ADAM, _adam_points(sizes), sizes, experiment_dir)
  by_eta, _ = _sweeps(sizes, adam_rows)
  momentum = _train(MOMENTUM, [
      {'learning_rate': eta, 'beta1': 0.9}
      for eta in sizes.momentum_learning_rates], sizes, experiment_dir)
  pairs = _at_equal_speed(by_eta, momentum)
  ratios = [p['ratio'] for p in pairs]
  outcome = _claim.Outcome(
      figure='11', claim=CLAIM_11,
      criterion=(f'at each of Adam\'s solutions within momentum\'s range of '
                 f'steps (two at least), Adam\'s λ1(H) ≥ {TREND:g} × '
                 'momentum\'s at the same steps'),
      holds=len(pairs) >= 2 and min(ratios) >= TREND,
      verdict=(f'{len(pairs)} of Adam\'s {len(by_eta)} solutions at a speed '
               f'momentum reaches; ratios {_claim.span(ratios)}'),
      rows=tuple(by_eta) + tuple(momentum) + tuple(pairs),
      settings=dataclasses.asdict(sizes))
  return outcome, (by_eta, momentum)


def _plain_labels(ax, xticks: Sequence[float] | None = None) -> None:
  """A log x axis spanning about a decade, labelled in plain numbers (at
  `xticks` when given), over a linear y; minor ticks gridded."""
  plain = ticker.FuncFormatter(lambda value, _: f'{value:g}')
  ax.xaxis.set_major_formatter(plain)
  ax.xaxis.set_minor_formatter(plain)
  if xticks is not None:
    ax.set_xticks(list(xticks), [f'{x:g}' for x in xticks])
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  ax.grid(alpha=0.3, which='both')


def draw_10(measured) -> Any:
  """λ1(H) at solution against η (β2 = 0.999) and against 1 − β2."""
  by_eta, by_beta2 = measured
  fig = figures.new_figure(9.0, 3.6)
  left, right = fig.subplots(1, 2)
  for ax, rows, x, label in (
      (left, by_eta, lambda r: r['learning_rate'], 'learning rate η'),
      (right, by_beta2, lambda r: 1 - r['beta2'], '1 − β2')):
    solved = sorted((r for r in rows if r['sharpness_at_solution']), key=x)
    ax.plot([x(r) for r in solved], [r['sharpness_at_solution']
                                     for r in solved],
            marker='o', color='C0', label='Adam: λ1(H) at solution')
    ax.set(xscale='log', xlabel=label,
           ylabel='sharpness at solution')
    _plain_labels(ax, [x(r) for r in solved])
  return _claim.finish(fig, 'Adam finds sharper solutions at smaller η and '
                       'smaller β2')


def draw_11(measured) -> Any:
  """λ1(H) at solution against steps to solution, Adam and momentum."""
  adam, momentum = measured
  fig = figures.new_figure(6.0, 4.0)
  ax = fig.subplots()
  for rows, name, colour in ((adam, 'Adam', 'C0'),
                             (momentum, 'momentum', 'C1')):
    solved = sorted((r for r in rows if r['solution_step'] is not None),
                    key=lambda r: r['solution_step'])
    ax.plot([r['solution_step'] for r in solved],
            [r['sharpness_at_solution'] for r in solved], marker='o',
            color=colour, label=name)
    for r in solved:
      ax.annotate(f'η={r["learning_rate"]:.2g}',
                  (r['solution_step'], r['sharpness_at_solution']),
                  textcoords='offset points', xytext=(4, 4), fontsize='x-small')
  ax.set(xscale='log', xlabel='steps to solution',
         ylabel='sharpness at solution')
  _plain_labels(ax)
  return _claim.finish(fig, 'At equal speed Adam finds sharper solutions '
                       'than momentum')


FIGURE_10 = _claim.PaperFigure(figure='10', claim=CLAIM_10, scales=SCALES,
                               measure=measure_10, draw=draw_10)
FIGURE_11 = _claim.PaperFigure(figure='11', claim=CLAIM_11, scales=SCALES,
                               measure=measure_11, draw=draw_11)
