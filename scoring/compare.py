"""Compares two reports: `python -m scoring.compare` (flags only).

  python -m scoring.compare --before=REPORT_A --after=REPORT_B \
      [--out=changes.md]

Each report is a report directory (`python -m scoring.report --out=...`) or
its leaderboard.json. `scoring.comparison` does the work: ranks and scores,
times to target, AEoS statistics, and runs whose flags, hyperparameters or
host changed. A report that is missing, corrupt or not a leaderboard, or an
--out that cannot be written, ends the command with one line naming the file
(exit status 2; `--verbose` adds the traceback).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from absl import app
from absl import flags

from harness import cli
from scoring import comparison

_PROGRAM = 'scoring.compare'

_BEFORE = flags.DEFINE_string(
    'before', None, 'The earlier report: its directory or leaderboard.json.')
_AFTER = flags.DEFINE_string(
    'after', None, 'The later report: its directory or leaderboard.json.')
_OUT = flags.DEFINE_string('out', None, 'Also write the comparison here.')


def _write(path: str, text: str) -> None:
  try:
    pathlib.Path(path).write_text(text, encoding='utf-8',
                                  errors='backslashreplace')
  except OSError as e:
    raise cli.UserError(
        f'--out={path}: cannot be written ({e.strerror or e})') from None


def main(argv: Sequence[str]) -> None:
  with cli.user_errors(_PROGRAM, comparison.ReportError):
    if len(argv) > 1:
      raise cli.UserError(f'unexpected arguments {argv[1:]}; give '
                          '--before=REPORT_A --after=REPORT_B [--out=FILE]')
    if not _BEFORE.value or not _AFTER.value:
      raise cli.UserError('give --before=REPORT_A and --after=REPORT_B '
                          '(report directories or their leaderboard.json)')
    text = comparison.format_comparison(
        comparison.compare_reports(_BEFORE.value, _AFTER.value))
    print(text, end='')
    if _OUT.value:
      _write(_OUT.value, text)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
