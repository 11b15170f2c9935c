r"""One run at a glance: loss, preconditioned sharpness and sharpness.

  python -m scoring.run_figure RUN_DIR [--out=FILE.png]

writes the figure of one run directory (by default `RUN_DIR/aeos.png`, the
file the demo writes) and prints its path.

Drawn from a run's records only (`harness.records.RunRecord`), like every
figure of the project. Panels, sharing the step axis:
  1. the train loss from `metrics.jsonl` and the probes, log-y, with the
     workload's train-loss threshold (the "solution") dotted;
  2. for a preconditioned method, λ1(P⁻¹H) against the stability threshold
     (dashed), log-y; without a preconditioner, λ1(H) against it;
  3. for a preconditioned method only, the raw sharpness λ1(H). Without a
     preconditioner it would repeat panel 2, so the figure has two panels.
Legends sit beside the axes, never over the data.
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
import textwrap
from typing import Any, Sequence

from absl import app
from absl import flags

from harness import cli
from harness import records
from scoring import aeos
from scoring import figures

DEFAULT_FILE = 'aeos.png'
_PROGRAM = 'scoring.run_figure'
# A run drawn on its own has no other submission to match; in a report, the
# caller passes the report's colour (`figures.colours`).
_COLOUR = 'tab:blue'



def _loss_points(record: records.RunRecord) -> tuple[list[int], list[float]]:
  # Probes see the training loss more often than evaluations do.
  points = {m.step: records.finite(m.train_loss) for m in record.metrics}
  points.update({c.step: records.finite(c.train_loss)
                 for c in record.curvature})
  steps = sorted(s for s, v in points.items() if v is not None and v > 0)
  return steps, [points[s] for s in steps]


def _line(ax: Any, steps, values, **kwargs) -> None:
  points = [(s, v) for s, v in zip(steps, values)
            if v is not None and math.isfinite(v) and v > 0]
  if points:
    ax.plot(*zip(*points), **{'marker': '.', **kwargs})


def _hparams(meta: records.Meta) -> str:
  return ', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in sorted(meta.hparams.items()))


def _loss_panel(ax: Any, record: records.RunRecord, colour: Any) -> None:
  steps, losses = _loss_points(record)
  if steps:
    ax.plot(steps, losses, color=colour, label='train loss')
    ax.set_yscale('log')
  threshold = records.finite(record.meta.workload.train_loss_threshold)
  if threshold is not None and threshold > 0:
    ax.axhline(threshold, color='grey', linestyle=':', linewidth=1.0,
               label='train-loss threshold')
  ax.set_ylabel('train loss')


def _sharpness_panels(axes: Sequence[Any], series: aeos.CurvatureSeries,
                      colour: Any) -> None:
  """λ1(P⁻¹H) (or λ1(H)) against the threshold; then λ1(H) when apart."""
  main = axes[0]
  if series.preconditioned:
    _line(main, series.steps, series.preconditioned_sharpness, color=colour,
          label='λ1(P⁻¹H)')
    main.set_ylabel('preconditioned sharpness')
    _line(axes[1], series.steps, series.sharpness, color=colour,
          label='λ1(H)')
    axes[1].set_ylabel('sharpness λ1(H)')
  else:
    _line(main, series.steps, series.sharpness, color=colour, label='λ1(H)')
    main.set_ylabel('sharpness λ1(H)')
  _line(main, series.steps, series.threshold, color='black', linestyle='--',
        marker=None, label='stability threshold')
  for ax in axes:
    if ax.lines:
      ax.set_yscale('log')
    else:
      ax.text(0.5, 0.5, 'no curvature probes', transform=ax.transAxes,
              ha='center', va='center', color='grey')


def draw_run(record: records.RunRecord, *, colour: Any = None) -> Any:
  """The run's figure as a matplotlib `Figure` (Agg canvas, no pyplot).

  Args:
    record: the run's records.
    colour: the submission's colour (e.g. the report's); a fixed one when
      None.

  Returns:
    The figure: three panels for a preconditioned method, two otherwise.
  """
  colour = _COLOUR if colour is None else colour
  series = aeos.curvature_series(record.curvature)
  panels = 3 if series.preconditioned else 2
  fig = figures.new_figure(7.6, 2.7 * panels + 0.6)
  axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
  _loss_panel(axes[0], record, colour)
  _sharpness_panels(axes[1:], series, colour)
  stats = aeos.aeos_stats(record.curvature, record.summary)
  for ax in axes[1:]:
    if stats.onset_step is not None:
      ax.axvline(stats.onset_step, color='grey', linewidth=0.8,
                 linestyle=':', label='AEoS onset')
  for ax in axes:
    ax.grid(alpha=0.3, which='both')
    figures.legend_beside(ax)
  axes[-1].set_xlabel('step')
  where = f'study {record.study}, trial {record.trial}'
  # Wrapped: a dozen hyperparameters would run off the canvas on one line.
  fig.suptitle(textwrap.fill(f'{record.workload} / {record.submission} '
                             f'({where}): {_hparams(record.meta)}', 100),
               fontsize='medium')
  return fig


def plot_run(record: records.RunRecord, *, dpi: int = 110,
             colour: Any = None) -> bytes:
  """The run's figure (`draw_run`) as PNG bytes."""
  return figures.to_png(draw_run(record, colour=colour), dpi)


def write_run_figure(run_dir: str | os.PathLike,
                     out: str | os.PathLike | None = None, *,
                     dpi: int = 110) -> pathlib.Path:
  """Reads a run directory and writes its figure; returns the file.

  Args:
    run_dir: a run directory (`.../<workload>/<submission>/study_S/trial_T`).
    out: the PNG to write; default `run_dir/aeos.png`.
    dpi: resolution.

  Raises:
    FileNotFoundError: `run_dir` is not a directory.
    records.RecordError: its records are unusable (meta.json).
    OSError: the PNG cannot be written.
  """
  path = pathlib.Path(run_dir)
  if not path.is_dir():
    raise FileNotFoundError(
        f'{path} is not a directory; give a run directory '
        '(<experiment_dir>/<workload>/<submission>/study_S/trial_T)')
  target = pathlib.Path(out) if out is not None else path / DEFAULT_FILE
  png = plot_run(records.read_run(path), dpi=dpi)
  target.write_bytes(png)
  return target


def _define_flags() -> tuple[Any, Any]:
  """The command line's flags, defined only when run as a program: the
  module is also imported by the report, whose own flags include --out."""
  return (flags.DEFINE_string(
      'out', None, f'PNG file to write; default RUN_DIR/{DEFAULT_FILE}.'),
          flags.DEFINE_integer('dpi', 110, 'Resolution of the PNG.'))


def main(argv: Sequence[str], *, out: str | None = None,
         dpi: int = 110) -> None:
  """Writes RUN_DIR's figure and prints its path; one-line errors, exit 2."""
  with cli.user_errors(_PROGRAM, records.RecordError, FileNotFoundError,
                       OSError):
    if len(argv) != 2:
      raise cli.UserError('give exactly one run directory: python -m '
                          f'{_PROGRAM} RUN_DIR [--out=FILE.png]')
    print(write_run_figure(argv[1], out, dpi=dpi))


if __name__ == '__main__':
  _OUT, _DPI = _define_flags()
  sys.exit(app.run(lambda argv: main(argv, out=_OUT.value, dpi=_DPI.value),
                   flags_parser=cli.flags_parser(_PROGRAM)))
