"""One run at a glance: loss, preconditioned sharpness and sharpness.

Drawn from a run's records only (`harness.records.RunRecord`), like every
figure of the project: the train loss from `metrics.jsonl` and the probes;
λ1(P⁻¹H) against the stability threshold (dashed), log-y; λ1(H).
"""

from __future__ import annotations

from typing import Any

from harness import records
from scoring import aeos
from scoring import figures


def _loss_points(record: records.RunRecord) -> tuple[list[int], list[float]]:
  # Probes see the training loss more often than evaluations do.
  points = {m.step: m.train_loss for m in record.metrics}
  points.update({c.step: c.train_loss for c in record.curvature})
  steps = sorted(points)
  return steps, [points[s] for s in steps]


def plot_run(record: records.RunRecord, *, dpi: int = 110) -> bytes:
  """Three stacked panels for one run, as PNG bytes."""
  from matplotlib import figure as mpl_figure  # Not at import time.
  from matplotlib.backends import backend_agg
  fig = mpl_figure.Figure(figsize=(6.4, 8.0), layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  loss_ax, pre_ax, raw_ax = fig.subplots(3, 1, sharex=True)
  steps, losses = _loss_points(record)
  loss_ax.plot(steps, losses, color='black')
  loss_ax.set_ylabel('train loss')
  loss_ax.set_yscale('log')
  series = aeos.curvature_series(record.curvature)
  name = record.submission
  if series.preconditioned:
    _line(pre_ax, series.steps, series.preconditioned_sharpness,
          color='tab:blue', label=f'{name}: λ1(P⁻¹H)')
    pre_ax.set_ylabel('preconditioned sharpness')
  else:
    _line(pre_ax, series.steps, series.sharpness, color='tab:blue',
          label=f'{name}: λ1(H)')
    pre_ax.set_ylabel('sharpness')
  _line(pre_ax, series.steps, series.threshold, color='black',
        linestyle='--', marker=None, label='stability threshold')
  pre_ax.set_yscale('log')
  pre_ax.legend(loc='lower right', fontsize='small')
  _line(raw_ax, series.steps, series.sharpness, color='tab:red')
  raw_ax.set_ylabel('sharpness λ1(H)')
  raw_ax.set_xlabel('step')
  stats = aeos.aeos_stats(record.curvature, record.summary)
  if stats.onset_step is not None:
    for ax in (pre_ax, raw_ax):
      ax.axvline(stats.onset_step, color='grey', linewidth=0.8, linestyle=':')
  fig.suptitle(f'{record.workload} / {name}: {_hparams(record.meta)}',
               fontsize='medium')
  return figures.to_png(fig, dpi)


def _line(ax: Any, steps, values, **kwargs) -> None:
  points = [(s, v) for s, v in zip(steps, values) if v is not None]
  if points:
    ax.plot(*zip(*points), **{'marker': '.', **kwargs})


def _hparams(meta: records.Meta) -> str:
  return ', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in sorted(meta.hparams.items()))
