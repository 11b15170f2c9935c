"""Curves across submissions, drawn onto a matplotlib Figure.

Two figure kinds of `scoring.figures` live here, with the line drawing every
figure shares:

  curves: the training curves of each submission's representative run on one
    workload, in a 2x2 grid: training loss (log-y) and the validation target
    metric, against submission time and against steps; the target dashed.
  aeos_ratio: the threshold ratio lambda_1(P^-1 H) / threshold (lambda_1(H) /
    threshold without a preconditioner) against step, every submission on one
    log axis with a line at 1, so methods whose thresholds differ by orders of
    magnitude compare at a glance; lambda_1(H) in its own panel below.

Functions here fill a Figure they are given and label their lines; the
caller owns the canvas and the legend, so every figure places its legend the
same way (`scoring.figures`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from scoring import aeos
from scoring import curves as curves_lib
from scoring import leaderboard as leaderboard_lib

TARGET_STYLE = {'color': 'black', 'linestyle': '--', 'linewidth': 1.0}


@dataclasses.dataclass(frozen=True)
class Trace:
  """One submission's representative run, as a figure draws it."""

  submission: str
  colour: Any
  curve: curves_lib.TrainingCurve
  series: aeos.CurvatureSeries


def plot_series(ax: Any, xs: Sequence[float], ys: Sequence[float | None], *,
                positive: bool = False, **kwargs: Any) -> Any | None:
  """Plots the finite (and, for log axes, positive) points of a series.

  A lone point gets a marker: a line through one point draws nothing.

  Returns:
    The Line2D, or None when no point is left.
  """
  points = [(x, y) for x, y in zip(xs, ys)
            if y is not None and (not positive or y > 0)]
  if not points:
    return None
  if len(points) == 1:
    kwargs.setdefault('marker', 'o')
  return ax.plot(*zip(*points), **kwargs)[0]


def _around(value: float, log: bool) -> tuple[float, float]:
  if log and value > 0:
    return value / 2, value * 2
  pad = abs(value) * 0.5 or 1.0
  return value - pad, value + pad


def settle_limits(ax: Any) -> None:
  """Explicit limits around data that has a single distinct x or y value.

  Autoscaling would put a lone value in the middle of an arbitrary range
  whose ticks suggest a spread the data does not have.
  """
  lines = [line for line in ax.get_lines()
           if line.get_transform() is ax.transData]
  for data, scale, setter in (
      (lambda line: line.get_xdata(), ax.get_xscale(), ax.set_xlim),
      (lambda line: line.get_ydata(), ax.get_yscale(), ax.set_ylim)):
    values = {float(v) for line in lines for v in data(line)}
    if len(values) == 1:
      setter(*_around(values.pop(), scale == 'log'))


def target_line(ax: Any, value: float) -> None:
  """The target as a dashed line, its value written just right of the axes."""
  ax.axhline(value, label=f'target {value:g}', **TARGET_STYLE)
  ax.annotate(f'{value:g}', xy=(1.0, value),
              xycoords=('axes fraction', 'data'), xytext=(3, 0),
              textcoords='offset points', va='center', ha='left',
              fontsize='small')


def draw_curves(fig: Any, traces: Sequence[Trace], *, target_metric: str,
                target_value: float) -> bool:
  """The 2x2 training-curve grid; False when no trace has a curve."""
  if not any(t.curve.loss_steps or t.curve.eval_steps for t in traces):
    return False
  (loss_t, loss_s), (metric_t, metric_s) = fig.subplots(2, 2, sharex='col')
  for trace in traces:
    curve, style = trace.curve, {'color': trace.colour, 'linewidth': 1.4}
    plot_series(loss_t, curve.eval_times_s, curve.eval_train_loss,
                positive=True, label=trace.submission, **style)
    plot_series(loss_s, curve.loss_steps, curve.loss, positive=True,
                label=trace.submission, **style)
    plot_series(metric_t, curve.eval_times_s, curve.target_metric,
                label=trace.submission, **style)
    plot_series(metric_s, curve.eval_steps, curve.target_metric,
                label=trace.submission, **style)
  for ax in (loss_t, loss_s):
    ax.set_yscale('log')
    ax.set_ylabel('training loss')
  for ax in (metric_t, metric_s):
    target_line(ax, target_value)
    ax.set_ylabel(target_metric)
  metric_t.set_xlabel('submission time (s)')
  metric_s.set_xlabel('step')
  for ax in (loss_t, loss_s, metric_t, metric_s):
    ax.grid(alpha=0.3, which='both')
    settle_limits(ax)
  return True


def ratio_points(series: aeos.CurvatureSeries
                 ) -> tuple[list[int], list[float]]:
  """(steps, ratio) where the threshold is known: the probe's threshold ratio.

  The ratio is lambda_1(P^-1 H) / threshold with a preconditioner and
  lambda_1(H) / threshold without one, as the runner writes it.
  """
  main = (series.preconditioned_sharpness if series.preconditioned
          else series.sharpness)
  pairs = [(s, m / t) for s, m, t in zip(series.steps, main, series.threshold)
           if m is not None and t is not None and t > 0 and m > 0]
  return [p[0] for p in pairs], [p[1] for p in pairs]


def draw_aeos_ratio(fig: Any, traces: Sequence[Trace]) -> bool:
  """Threshold ratio above, lambda_1(H) below; False without any probe."""
  probed = [t for t in traces if t.series.steps]
  if not probed:
    return False
  ratio_ax, raw_ax = fig.subplots(2, 1, sharex=True,
                                  gridspec_kw={'height_ratios': (3, 2)})
  ratio_ax.axhline(1.0, label='edge of stability (ratio 1)', **TARGET_STYLE)
  for trace in probed:
    steps, ratio = ratio_points(trace.series)
    quantity = ('λ1(P⁻¹H)' if trace.series.preconditioned else 'λ1(H)')
    line = plot_series(ratio_ax, steps, ratio, color=trace.colour,
                       linewidth=1.5,
                       label=f'{trace.submission}: {quantity} / threshold')
    plot_series(raw_ax, trace.series.steps, trace.series.sharpness,
                positive=True, color=trace.colour, linewidth=1.2,
                label=None if line is not None
                else f'{trace.submission}: threshold unknown')
  ratio_ax.set_yscale('log')
  ratio_ax.set_ylabel('threshold ratio')
  raw_ax.set_yscale('log')
  raw_ax.set_ylabel('sharpness λ1(H)')
  raw_ax.set_xlabel('step')
  for ax in (ratio_ax, raw_ax):
    ax.grid(alpha=0.3, which='both')
    settle_limits(ax)
  return True


def traces(cells: Sequence[leaderboard_lib.Cell],
           runs: Mapping[str, leaderboard_lib.RunEntry],
           colours: Mapping[str, Any]) -> list[Trace]:
  """The representative run of each cell that has one."""
  return [Trace(submission=c.submission, colour=colours[c.submission],
                curve=runs[c.representative].curve, series=c.series)
          for c in cells if c.representative is not None]
