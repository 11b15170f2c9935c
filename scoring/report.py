r"""Builds a leaderboard report: `python -m scoring.report` (flags only).

  python -m scoring.report --experiment_dirs=runs/a,runs/b \
      --out=reports/today [--allow_mixed_hardware] [--tau_max=4] \
      [--missing_runs=fail|common|refuse]

`scoring.report_files.build_report` does the work and says what the report
directory holds. Run directories are found at any depth under each
experiment directory. Unusable run records are skipped and listed in the
report.

A submission with no run on a workload that others of its ranking group ran
is named in the report; `--missing_runs` says how it is ranked: `fail` (the
default, AlgoPerf's rule) counts it as failed there, `common` ranks the
group over the workloads every submission has and lists the others as left
out, `refuse` builds nothing and names the missing runs.

A missing experiment directory (all of them), a report directory that
cannot be replaced, or missing runs under `--missing_runs=refuse` end the
command with one line (exit status 2; `--verbose` adds the traceback).
"""

from __future__ import annotations

from typing import Sequence

from absl import app
from absl import flags

from harness import cli
from scoring import leaderboard
from scoring import report_files
from scoring import scores

_EXPERIMENT_DIRS = flags.DEFINE_list(
    'experiment_dirs', None,
    'Comma-separated experiment directories of run records (searched at any '
    'depth).')
_OUT = flags.DEFINE_string('out', None, 'Report directory to write.')
_ALLOW_MIXED_HARDWARE = flags.DEFINE_bool(
    'allow_mixed_hardware', False,
    'Rank runs from different device kinds in one table (marked as mixed). '
    'Default: one ranking per device kind.')
_TAU_MAX = flags.DEFINE_float(
    'tau_max', scores.DEFAULT_TAU_MAX,
    'Upper limit of the performance profile integral.')
_MISSING_RUNS = flags.DEFINE_enum_class(
    'missing_runs', leaderboard.MissingRuns.FAIL, leaderboard.MissingRuns,
    'A submission with no run on a workload others of its ranking group ran '
    '(always named in the report): fail = counted as failed there '
    "(AlgoPerf's rule, the default); common = rank over the workloads every "
    'submission has, the others listed as left out; refuse = build nothing, '
    'one line naming the missing runs, exit status 2.',
    case_sensitive=False)

_PROGRAM = 'scoring.report'


def main(argv: Sequence[str]) -> None:
  cli.no_arguments(_PROGRAM, argv)
  with cli.user_errors(_PROGRAM, report_files.ReportError, FileNotFoundError,
                       leaderboard.MissingRunsError):
    report = report_files.build_report(
        _EXPERIMENT_DIRS.value, _OUT.value,
        allow_mixed_hardware=_ALLOW_MIXED_HARDWARE.value,
        tau_max=_TAU_MAX.value, missing_runs=_MISSING_RUNS.value)
  print(f'Report: {report.out_dir / report_files.HTML_FILE}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['experiment_dirs', 'out'])
  flags.register_validator(
      'tau_max', lambda value: value > 1,
      message='--tau_max must be greater than 1 (AlgoPerf uses 4)')
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
