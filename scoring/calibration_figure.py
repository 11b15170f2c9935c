r"""A calibration at a glance: the search, the reruns, the target and budgets.

  python -m scoring.calibration_figure RECORD.json [--out=FILE.png]

writes the figure of a calibration record (`harness.calibrate`'s
`calibration.json`, or a committed `workloads/calibrations/<name>.json`) by
default beside it, with the extension `.png`, and prints its path.

Drawn from the record alone. Panels:
  1. every search trial's validation curve by step, one colour per
     target-setting algorithm, the chosen trial drawn thick;
  2. the reruns of the chosen point by step, with the target (dashed) and
     the step budget (dotted);
  3. the same reruns by submission time, with the target and the runtime
     budget.
"""

from __future__ import annotations

import math
import pathlib
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from harness import calibration
from harness import cli
from harness import records
from scoring import figures

_PROGRAM = 'scoring.calibration_figure'
_RERUN_COLOUR = 'tab:blue'


def _search_panel(ax: Any, record: calibration.CalibrationRecord) -> None:
  chosen = calibration.choose(record.search,
                              higher_is_better=record.higher_is_better)
  palette = {name: f'C{i}' for i, name in enumerate(record.candidates)}
  labelled = set()
  for run in record.search:
    is_chosen = run is chosen
    label = None
    if is_chosen:
      label = f'{run.submission} (chosen)'
    elif run.submission not in labelled:
      label = run.submission
      labelled.add(run.submission)
    ax.plot(run.curve.steps, run.curve.values,
            color=palette.get(run.submission, 'grey'),
            linewidth=2.4 if is_chosen else 0.9,
            alpha=1.0 if is_chosen else 0.6, label=label)
  ax.axhline(record.target_value, color='black', linestyle='--',
             linewidth=1.0, label=f'target {record.target_value:g}')
  ax.set_xlabel('step')
  ax.set_title(f'search: {record.trials_per_candidate} points of each '
               'algorithm', fontsize='medium')


def _reruns_panel(ax: Any, record: calibration.CalibrationRecord, *,
                  by_time: bool) -> None:
  for k, run in enumerate(record.seeds):
    x = run.curve.submission_time_s if by_time else run.curve.steps
    ax.plot(x, run.curve.values, color=_RERUN_COLOUR, linewidth=0.9,
            alpha=0.75, label=f'{len(record.seeds)} seeds' if k == 0 else None)
  ax.axhline(record.target_value, color='black', linestyle='--',
             linewidth=1.0, label=f'target {record.target_value:g}')
  if by_time:
    ax.axvline(record.runtime_budget_s, color='black', linestyle=':',
               linewidth=1.0,
               label=f'runtime budget {record.runtime_budget_s:g} s')
    ax.set_xlabel('submission time (s)')
  else:
    ax.axvline(record.step_budget, color='black', linestyle=':',
               linewidth=1.0, label=f'step budget {record.step_budget}')
    ax.set_xlabel('step')
  ax.set_ylim(*_near_target(record))
  ax.set_title(f'reruns of {record.chosen_submission}'
               + (', by time' if by_time else ''), fontsize='medium')


def _near_target(record: calibration.CalibrationRecord
                 ) -> tuple[float, float]:
  """The reruns' y-range once they approach the target: the target is
  set by differences of a fraction of a percent, which a full-range axis
  would flatten."""
  values = [v for run in record.seeds
            for v in run.curve.values[1:] if math.isfinite(v)]
  if not values:
    return record.target_value - 1.0, record.target_value + 1.0
  near = (np.percentile(values, [10, 100]) if record.higher_is_better
          else np.percentile(values, [0, 90]))
  low = min(near[0], record.target_value)
  high = max(near[1], record.target_value)
  pad = 0.1 * (high - low) or 0.01 * abs(record.target_value) or 0.01
  return float(low - pad), float(high + pad)


def draw_calibration(record: calibration.CalibrationRecord) -> Any:
  """The record's figure as a matplotlib `Figure` (Agg canvas, no pyplot)."""
  fig = figures.new_figure(7.6, 9.0)
  axes = fig.subplots(3, 1)
  _search_panel(axes[0], record)
  _reruns_panel(axes[1], record, by_time=False)
  _reruns_panel(axes[2], record, by_time=True)
  for ax in axes:
    ax.set_ylabel(record.target_metric)
    ax.grid(alpha=0.3)
    figures.legend_beside(ax)
  fig.suptitle(f'calibration of {record.workload} ({record.devices.count} '
               f'{record.devices.kind})', fontsize='medium')
  return fig


def write_calibration_figure(record_file: str | pathlib.Path,
                             out: str | pathlib.Path | None = None, *,
                             dpi: int = 110) -> pathlib.Path:
  """Reads a calibration record and writes its figure; returns the file.

  Raises:
    FileNotFoundError: `record_file` does not exist.
    records.RecordError: it is not a calibration record.
    OSError: the PNG cannot be written.
  """
  path = pathlib.Path(record_file)
  if not path.is_file():
    raise FileNotFoundError(f'{path} is not a file; give a calibration '
                            'record (e.g. workloads/calibrations/NAME.json)')
  target = pathlib.Path(out) if out is not None else path.with_suffix('.png')
  png = figures.to_png(draw_calibration(calibration.read(path)), dpi)
  target.write_bytes(png)
  return target


def main(argv: Sequence[str], *, out: str | None = None,
         dpi: int = 110) -> None:
  """Writes RECORD's figure and prints its path; one-line errors, exit 2."""
  with cli.user_errors(_PROGRAM, records.RecordError, FileNotFoundError,
                       OSError):
    if len(argv) != 2:
      raise cli.UserError('give exactly one calibration record: python -m '
                          f'{_PROGRAM} RECORD.json [--out=FILE.png]')
    print(write_calibration_figure(argv[1], out, dpi=dpi))


if __name__ == '__main__':
  _OUT = flags.DEFINE_string('out', None,
                             'PNG file to write; default RECORD.png.')
  _DPI = flags.DEFINE_integer('dpi', 110, 'Resolution of the PNG.')
  sys.exit(app.run(lambda argv: main(argv, out=_OUT.value, dpi=_DPI.value),
                   flags_parser=cli.flags_parser(_PROGRAM)))
