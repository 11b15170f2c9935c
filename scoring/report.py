r"""Builds a leaderboard report: `python -m scoring.report` (flags only).

  python -m scoring.report --experiment_dirs=runs/a,runs/b \
      --out=reports/today [--allow_mixed_hardware] [--tau_max=4]

`scoring.report_files.build_report` does the work and says what the report
directory holds. Unusable run records are skipped and listed in the report;
a missing experiment directory (all of them) or a report directory that
cannot be replaced ends the command with one line (exit status 2).
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app
from absl import flags

from scoring import report_files
from scoring import scores

_EXPERIMENT_DIRS = flags.DEFINE_list(
    'experiment_dirs', None,
    'Comma-separated experiment directories of run records.')
_OUT = flags.DEFINE_string('out', None, 'Report directory to write.')
_ALLOW_MIXED_HARDWARE = flags.DEFINE_bool(
    'allow_mixed_hardware', False,
    'Rank runs from different device kinds in one table (marked as mixed). '
    'Default: one ranking per device kind.')
_TAU_MAX = flags.DEFINE_float(
    'tau_max', scores.DEFAULT_TAU_MAX,
    'Upper limit of the performance profile integral.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    report = report_files.build_report(
        _EXPERIMENT_DIRS.value, _OUT.value,
        allow_mixed_hardware=_ALLOW_MIXED_HARDWARE.value,
        tau_max=_TAU_MAX.value)
  except (report_files.ReportError, FileNotFoundError) as e:
    # One line, no traceback: the experiment or report directory is wrong.
    print(f'scoring.report: error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'Report: {report.out_dir / report_files.HTML_FILE}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['experiment_dirs', 'out'])
  app.run(main)
