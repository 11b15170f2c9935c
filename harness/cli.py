"""One-line errors for the `python -m` entry points.

An expected user error (a bad flag value, missing data, a run directory
that holds a finished run, a report that does not exist) ends the command
with one line, `<program>: error: <what is wrong and what to do>`, and exit
status 2. A run that failed (its submission raised; recorded in its run
directory) ends with one line and its own exit status (1). Anything else is
a bug and keeps its traceback. `--verbose` adds the traceback to the
expected errors too.

  def main(argv):
    with cli.user_errors('scoring.report', report_files.ReportError):
      ...
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from typing import Callable, Iterator, Sequence

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


def flags_parser(program: str) -> Callable[[list[str]], list[str]]:
  """absl's flag parsing for `app.run(..., flags_parser=...)`: an unknown,
  missing or malformed flag is one line and exit 2."""

  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      fail(program, f'{e}; --helpshort lists the flags')
    raise AssertionError('unreachable')

  return parse


def no_arguments(program: str, argv: Sequence[str], *,
                 hint: str = 'every setting is a --flag (--helpshort lists '
                             'them)') -> None:
  """Refuses positional arguments in one line (exit 2)."""
  if len(argv) > 1:
    fail(program, f'unexpected arguments {list(argv[1:])}; {hint}')


def run_failed(program: str, error: Exception, line: str,
               exit_status: int) -> int:
  """Reports a failed run in one line (the traceback with --verbose).

  Args:
    program: the entry point's name.
    error: the exception that ended the run.
    line: what failed and where its records are.
    exit_status: the status the program returns.

  Returns:
    `exit_status`, for the entry point to return.
  """
  if verbose():
    traceback.print_exception(error)
  print(f'{program}: error: {line}', file=sys.stderr, flush=True)
  return exit_status
