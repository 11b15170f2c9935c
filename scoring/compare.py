"""Compares two reports: `python -m scoring.compare A B` (flags only).

  python -m scoring.compare REPORT_A REPORT_B [--out=changes.md]

`scoring.comparison` does the work. A report that is missing, corrupt or
not a leaderboard ends the command with one line naming the file (exit
status 2).
"""

from __future__ import annotations

import pathlib
import sys
from typing import NoReturn, Sequence

from absl import app
from absl import flags

from scoring import comparison

_OUT = flags.DEFINE_string('out', None, 'Also write the comparison here.')


def main(argv: Sequence[str]) -> None:
  if len(argv) != 3:
    raise app.UsageError('usage: python -m scoring.compare REPORT_A REPORT_B '
                         '[--out=FILE]')
  try:
    text = comparison.format_comparison(
        comparison.compare_reports(argv[1], argv[2]))
  except comparison.ReportError as e:
    fail(e)
  print(text, end='')
  if _OUT.value:
    try:
      pathlib.Path(_OUT.value).write_text(text, encoding='utf-8',
                                          errors='backslashreplace')
    except OSError as e:
      fail(f'--out={_OUT.value}: cannot be written ({e.strerror or e})')


def fail(message: object) -> NoReturn:
  """Ends with one line naming the problem, exit status 2 (no traceback)."""
  print(f'scoring.compare: error: {message}', file=sys.stderr)
  sys.exit(2)


if __name__ == '__main__':
  app.run(main)
