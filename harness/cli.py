"""One-line errors for the `python -m` entry points.

An expected user error (a bad flag value, missing data, a run directory
that holds a finished run, a report that does not exist) ends the command
with one line, `<program>: error: <what is wrong and what to do>`, and exit
status 2. Anything else is a bug and keeps its traceback. `--verbose` adds
the traceback to the expected errors too.

  def main(argv):
    with cli.user_errors('scoring.report', report_files.ReportError):
      ...
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Iterator

from absl import flags

EXIT_USAGE = 2

_VERBOSE = flags.DEFINE_bool(
    'verbose', False,
    'Show the traceback of an expected error (bad input, missing data) too, '
    'not only its one-line message.')


class UserError(ValueError):
  """An error in what the user asked for; its message says what to do."""


def verbose() -> bool:
  return flags.FLAGS.is_parsed() and _VERBOSE.value


def fail(program: str, message: object) -> None:
  """Prints `program: error: message` on one line and exits with status 2."""
  text = ' '.join(str(message).split()) or type(message).__name__
  print(f'{program}: error: {text}', file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)


@contextlib.contextmanager
def user_errors(program: str,
                *expected: type[BaseException]) -> Iterator[None]:
  """Turns the expected exceptions (and `UserError`) into one line, exit 2.

  Args:
    program: the entry point's name, e.g. `harness.submission_runner`.
    *expected: exception types that mean bad input rather than a bug.

  Yields:
    Nothing; the body runs inside.
  """
  try:
    yield
  except (UserError, *expected) as e:  # pylint: disable=catching-non-exception
    if verbose():
      traceback.print_exc()
    fail(program, e)
