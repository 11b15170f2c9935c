"""How a run ended, as `runner.train` reports it to its caller."""

from __future__ import annotations

import dataclasses
import pathlib

from harness import records

Status = records.Status


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Where a run's records are and how it ended.

  Attributes:
    run_dir: the run directory.
    status: how it ended.
    summary: its summary.json.
    stopped_by: the signal (SIGTERM, SIGINT) that stopped it, if one did.
  """

  run_dir: pathlib.Path
  status: Status
  summary: records.Summary
  stopped_by: int | None = None


class Stop(Exception):
  """Ends the training loop with a status (inside the loop only)."""

  def __init__(self, status: Status):
    super().__init__(status.value)
    self.status = status


class RunFailed(RuntimeError):
  """An exception inside a run, recorded in its run directory.

  Attributes:
    run_dir: the run directory, whose summary holds the error.
    error: `Type: message` of the exception (its cause).
  """

  exit_status = 1  # The submission's failure, not a usage error (2).

  def __init__(self, run_dir: pathlib.Path, error: str):
    super().__init__(f'run failed, recorded in {run_dir}: {error}')
    self.run_dir = run_dir
    self.error = error

  @property
  def line(self) -> str:
    """One line for the command line; the rest is in `summary.json`."""
    first = (self.error.strip().splitlines() or ['error'])[0]
    return (f'the run failed: {first} (recorded in {self.run_dir}/'
            f'{records.SUMMARY_FILE}; --verbose shows the traceback)')
