"""Running a suite's jobs in this process's machine, with no flags.

What `harness.suite` (the command line), `harness.calibrate` and the paper
figures (`scoring.paper_figures`) share: the settings a suite keeps in
`suite.json` (other settings are refused, the difference named), and the
local launcher, which skips finished trials, resumes unfinished ones, and
runs each job in a process of its own or in this one. Importing it defines
no flags, so an entry point with flags of its own can run a suite.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Any, Sequence

from harness import cli
from harness import config as config_lib
from harness import isolated
from harness import jobs as jobs_lib
from harness import outcome
from harness import records
from harness import run_directory
from submissions import hparams as hparams_lib

SUITE_FILE = 'suite.json'
# Where an unfinished trial with nothing to resume from is kept aside.
ASIDE_DIR = '.aside'

@dataclasses.dataclass(frozen=True)
class JobResult:
  """How one job of the suite went."""

  job: jobs_lib.Job
  line: str  # One line for the log, e.g. 'reached_target after 1.2s'.
  ran: bool  # False when skipped as finished.
  failed: bool
  seconds: float


def job_config(base: config_lib.RunConfig, job: jobs_lib.Job
               ) -> config_lib.RunConfig:
  """The run of `job`: the suite's runner flags and the job's own fields."""
  return dataclasses.replace(
      base, workload=job.workload, submission=job.submission,
      hparams=hparams_lib.to_jsonable(job.hparams), study=job.study,
      trial=job.trial, seed=job.seed)


def settings_record(spec: jobs_lib.SuiteSpec,
                    base: config_lib.RunConfig) -> dict[str, Any]:
  """What `suite.json` keeps: the spec (with each search space's content
  hash) and the runner flags every job shares, less those a resumed run may
  change."""
  shared = json.loads(json.dumps(dataclasses.asdict(base)))
  for name in run_directory.RESUMABLE_CHANGES | {
      'workload', 'submission', 'hparams', 'study', 'trial', 'seed'}:
    shared.pop(name, None)
  suite = json.loads(json.dumps(dataclasses.asdict(spec)))
  # A search space edited in its file changes the points: its content
  # counts, not only its name.
  suite['search_space_sha256'] = {
      submission: jobs_lib.search_space_sha256(spec, submission)
      for submission in spec.submissions}
  return {'suite': suite, 'runs': shared}


def check_settings(directory: pathlib.Path, settings: dict[str, Any]) -> None:
  """Writes `suite.json`, or refuses settings other than those it holds.

  Raises:
    cli.UserError: naming each setting that differs.
  """
  path = directory / SUITE_FILE
  if not path.exists():
    # Array tasks may start together: each writes whole, by a rename.
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'.{SUITE_FILE}.{os.getpid()}')
    temporary.write_text(json.dumps(settings, indent=2, sort_keys=True) +
                         '\n')
    os.replace(temporary, path)
    return
  before = json.loads(path.read_text())
  changed = [f'{part}.{name}: {before.get(part, {}).get(name)!r} -> '
             f'{settings[part].get(name)!r}'
             for part in ('suite', 'runs')
             for name in sorted(set(before.get(part, {})) |
                                set(settings[part]))
             if before.get(part, {}).get(name) != settings[part].get(name)]
  if changed:
    raise cli.UserError(
        f'{path} holds a suite with other settings ({"; ".join(changed)}); '
        'rerun it with the same flags, or choose another --experiment_dir')


def record_settings(directory: pathlib.Path, spec: jobs_lib.SuiteSpec,
                    base: config_lib.RunConfig,
                    job_list: Sequence[jobs_lib.Job]) -> None:
  """Before any job runs: `suite.json` (or a refusal of other settings,
  `check_settings`) and each study's `study.json`."""
  check_settings(directory, settings_record(spec, base))
  jobs_lib.write_study_records(directory, spec, job_list)


def _finished(directory: pathlib.Path) -> records.Summary | None:
  """The summary of a trial that needs no rerun, else None.

  A final status counts, and so does an error of the submission's own:
  running it again would fail the same way. Set-up and harness errors,
  interruptions and kills are run again.
  """
  summary = run_directory.read_summary(directory)
  if summary is None:
    return None
  if summary.status in run_directory.FINISHED or (
      summary.status is records.Status.ERROR and
      summary.error_kind is records.ErrorKind.SUBMISSION):
    return summary
  return None


def _keep_aside(experiment_dir: pathlib.Path, directory: pathlib.Path) -> None:
  """Moves an unfinished trial with no checkpoint under `.aside/`, where
  scoring does not look, before it starts again."""
  checkpoints = directory / records.CHECKPOINT_DIR
  if not directory.exists() or (checkpoints.is_dir() and
                                any(checkpoints.iterdir())):
    return
  stamp = time.strftime('%Y%m%dT%H%M%S')
  target = experiment_dir / ASIDE_DIR / directory.relative_to(
      experiment_dir).parent / f'{directory.name}.{stamp}'
  target.parent.mkdir(parents=True, exist_ok=True)
  directory.rename(target)


def run_job(base: config_lib.RunConfig, job: jobs_lib.Job) -> JobResult:
  """Runs one job (or skips it as finished); never raises for the job's
  own failure, which its line names."""
  # pylint: disable=g-import-not-at-top
  from harness import preflight
  from harness import runner
  # pylint: enable=g-import-not-at-top
  experiment_dir = pathlib.Path(base.experiment_dir)
  directory = job.run_dir(experiment_dir)
  start = time.perf_counter()
  summary = _finished(directory)
  if summary is not None:
    return JobResult(job, f'skipped: finished ({summary.status.value})',
                     ran=False, failed=False, seconds=0.0)
  _keep_aside(experiment_dir, directory)
  try:
    result = runner.train(job_config(base, job))
  except (outcome.RunFailed, preflight.SetupError,
          run_directory.RunDirectoryError, ValueError) as e:
    line = e.line if isinstance(e, outcome.RunFailed) else str(e)
    return JobResult(job, f'failed: {line}', ran=True, failed=True,
                     seconds=time.perf_counter() - start)
  summary = result.summary
  target = ('target not reached' if summary.time_to_target_s is None else
            f'target after {summary.time_to_target_s:.2f}s')
  return JobResult(job, f'{summary.status.value} at step '
                   f'{summary.final_step}, {target}', ran=True,
                   failed=result.status is records.Status.ERROR,
                   seconds=time.perf_counter() - start)


def run_local(base: config_lib.RunConfig, job_list: Sequence[jobs_lib.Job],
              out=None, *, fresh_processes: bool = True) -> list[JobResult]:
  """Runs the jobs in order, with a line per job and an ETA.

  Args:
    base, job_list: the runner's flags and the jobs.
    out: where the lines go (stdout).
    fresh_processes: each job in a process of its own (see
      `harness.isolated`); False runs them in this one, which is fair for a
      single job only.

  Raises:
    isolated.Stopped: a stop signal ended a job; no later job started.
  """
  out = out or sys.stdout
  results, total = [], len(job_list)
  for number, job in enumerate(job_list, 1):
    print(f'[{number}/{total}] job {job.describe()}', file=out, flush=True)
    start = time.perf_counter()
    try:
      result = (isolated.call(run_job, base, job) if fresh_processes
                else run_job(base, job))
    except isolated.Stopped as stop:
      print(f'[{number}/{total}] {_line(stop.result)}; {stop}: rerun the '
            'same command to continue', file=out, flush=True)
      raise
    except RuntimeError as e:
      # A crash of the job's process (a harness bug, memory): the suite
      # goes on, and the line says what happened.
      result = JobResult(job, f'failed: {e}', ran=True, failed=True,
                         seconds=time.perf_counter() - start)
    results.append(result)
    print(f'[{number}/{total}] {result.line}{_eta(results, total)}',
          file=out, flush=True)
  return results


def _line(result: Any) -> str:
  return result.line if isinstance(result, JobResult) else str(result)


def _eta(results: Sequence[JobResult], total: int) -> str:
  ran = [r.seconds for r in results if r.ran]
  left = total - len(results)
  if not ran or not left:
    return ''
  return f' (ETA {left * sum(ran) / len(ran):.0f}s for {left} more)'
