"""Compares two reports: `python -m scoring.compare A B` (flags only).

  python -m scoring.compare REPORT_A REPORT_B [--out=changes.md]

`scoring.comparison` does the work.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from absl import app
from absl import flags

from scoring import comparison

_OUT = flags.DEFINE_string('out', None, 'Also write the comparison here.')


def main(argv: Sequence[str]) -> None:
  if len(argv) != 3:
    raise app.UsageError('usage: python -m scoring.compare REPORT_A REPORT_B '
                         '[--out=FILE]')
  text = comparison.format_comparison(
      comparison.compare_reports(argv[1], argv[2]))
  print(text, end='')
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(text, encoding='utf-8')


if __name__ == '__main__':
  app.run(main)
