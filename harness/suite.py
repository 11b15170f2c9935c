r"""Runs a suite: `python -m harness.suite`.

Submissions × workloads × studies × trials, expanded into a numbered job
list that is the same for the same flags (`harness.jobs`). Examples::

  python -m harness.suite --submissions=adam,heavy_ball \
      --workloads=tier:smoke --num_studies=2 --num_tuning_trials=3 \
      --experiment_dir=runs/suite --max_steps=200
  python -m harness.suite ... --list_jobs        # one numbered job a line
  python -m harness.suite ... --job_index=$SLURM_ARRAY_TASK_ID
  python -m harness.suite ... --launcher=slurm --slurm_partition=gpu

Every flag of `harness.submission_runner` (`--max_steps`, `--eval_every`,
the curvature flags, ...) passes through to every job; `--seed` seeds the
suite, from which each study's and trial's seed is drawn.
`--launcher=local` (the default) runs the jobs in order here, each in a
process of its own (so that no trial's timed first step reuses another's
compilation); `--job_index=I` runs job I alone, so a SLURM array or a
Kubernetes indexed Job fans the suite out; `--launcher=slurm` submits one
array job through submitit.

Re-running the same command continues: a finished trial is skipped, an
unfinished one resumes from its checkpoint, and one with nothing to resume
from starts again with its old directory kept under `.aside/`. The suite's
settings are kept in `suite.json`; other settings are refused.

Exit status: 0 when every job ran to a result (or was skipped as
finished), 1 when a job failed, 2 for bad input (one line), 128 + the
signal when SIGTERM or Ctrl-C stopped it (its running job checkpointed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags

from harness import cli
from harness import config as config_lib
from harness import isolated
from harness import jobs as jobs_lib
from harness import outcome
from harness import records
from harness import run_directory
from harness import slurm
from harness import submission_runner
from submissions import hparams as hparams_lib

PROGRAM = 'harness.suite'
SUITE_FILE = 'suite.json'
ASIDE_DIR = '.aside'

_SUBMISSIONS = flags.DEFINE_list(
    'submissions', None, 'Baseline names or submission files, comma-separated.')
_WORKLOADS = flags.DEFINE_string(
    'workloads', None, 'Workload names, comma-separated, or tier:NAME (e.g. '
    'tier:smoke) for every workload of a tier.')
_NUM_STUDIES = flags.DEFINE_integer('num_studies', 1,
                                    'Studies per submission and workload.',
                                    lower_bound=1)
_LIST_JOBS = flags.DEFINE_bool(
    'list_jobs', False, 'Print the numbered job list, one job a line, and '
    'run nothing.')
_JOB_INDEX = flags.DEFINE_integer(
    'job_index', None, 'Run job I alone (e.g. $SLURM_ARRAY_TASK_ID or '
    '$JOB_COMPLETION_INDEX).')
_LAUNCHER = flags.DEFINE_enum(
    'launcher', 'local', ['local', 'slurm'],
    'local: run the jobs here, in order; slurm: submit them as one array '
    'job through submitit (see the --slurm_* flags).')


@dataclasses.dataclass(frozen=True)
class JobResult:
  """How one job of the suite went."""

  job: jobs_lib.Job
  line: str  # One line for the log, e.g. 'reached_target after 1.2s'.
  ran: bool  # False when skipped as finished.
  failed: bool
  seconds: float


def spec_from_flags(submissions: Sequence[str] | None,
                    workloads: str | None, *,
                    other_names: Sequence[str] = ()) -> jobs_lib.SuiteSpec:
  """The suite the parsed flags describe.

  Args:
    submissions, workloads: what the suite runs, as the flags give them.
    other_names: flags of the other entry point (`harness.study` takes one
      --submission and --workload, the suite --submissions and
      --workloads), refused here.
  """
  other = [f'--{name}' for name in other_names if flags.FLAGS[name].present]
  if other:
    theirs = ('harness.study' if 'submission' in other_names
              else 'harness.suite')
    raise cli.UserError(
        f'{", ".join(other)} not taken here but by {theirs}: a suite names '
        'what it runs with --submissions and --workloads, a study with '
        '--submission and --workload')
  per_job = [f'--{name}' for name in ('hparams', 'study', 'trial')
             if flags.FLAGS[name].present]
  if per_job:
    raise cli.UserError(
        f'{", ".join(per_job)} not taken here: each job has its own '
        'hyperparameters, study and trial (--search_space gives the points, '
        '--num_studies and --num_tuning_trials their number)')
  if not submissions or not workloads:
    raise cli.UserError('say what to run: the submissions and the workloads')
  return jobs_lib.SuiteSpec(
      submissions=tuple(submissions),
      workloads=jobs_lib.workload_names(workloads),
      num_studies=_NUM_STUDIES.value,
      num_trials=flags.FLAGS.num_tuning_trials or 1,
      ruleset=flags.FLAGS.tuning_ruleset,
      search_space=flags.FLAGS.search_space, seed=flags.FLAGS.seed)


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


def run_submitit(base: config_lib.RunConfig,
                 job_list: Sequence[jobs_lib.Job], out=None) -> int:
  """Submits the jobs as one array through submitit (`harness.slurm`).

  On SLURM it prints the array's job id and returns; with submitit's local
  or debug executor it waits and prints each job's line.
  """
  out = out or sys.stdout
  submitted = slurm.submit(base, job_list, run_job)
  if slurm.waits():
    results = [job.result() for job in submitted]
    for number, result in enumerate(results, 1):
      print(f'[{number}/{len(results)}] {result.line}', file=out, flush=True)
    return 1 if any(r.failed for r in results) else 0
  ids = sorted({job.job_id.split('_')[0] for job in submitted})
  print(f'submitted {len(submitted)} jobs as SLURM array {", ".join(ids)}; '
        f'logs in {slurm.log_dir(base)}', file=out, flush=True)
  return 0


def run_from_flags(program: str, spec: jobs_lib.SuiteSpec) -> int:
  """Lists, runs or submits the jobs of `spec` as the flags ask; the exit
  status. Bad input ends in one line (exit 2)."""
  with cli.user_errors(program, ValueError):
    base = submission_runner.config_from_flags()
    job_list = jobs_lib.expand(
        spec, study_seeds=jobs_lib.recorded_seeds(base.experiment_dir, spec))
    index = _JOB_INDEX.value
    if index is not None and not 0 <= index < len(job_list):
      raise cli.UserError(f'--job_index={index} is out of range: there are '
                          f'{len(job_list)} jobs, 0 to {len(job_list) - 1} '
                          '(--list_jobs lists them)')
  if _LIST_JOBS.value:
    for job in job_list:
      print(job.describe())
    return 0
  experiment_dir = pathlib.Path(base.experiment_dir)
  with cli.user_errors(program, ValueError):
    record_settings(experiment_dir, spec, base, job_list)
  chosen = job_list if index is None else [job_list[index]]
  if _LAUNCHER.value == 'slurm':
    return run_submitit(base, chosen)
  try:
    # One job alone needs no process of its own, and keeps the scheduler's
    # signals (SIGTERM before a time limit) for its run.
    results = run_local(base, chosen, fresh_processes=index is None)
  except isolated.Stopped as stop:
    return 128 + stop.signum
  failed = [r for r in results if r.failed]
  print(f'{len(results) - len(failed)} of {len(results)} jobs ran to a '
        f'result or were finished; scores: python -m scoring.report '
        f'--experiment_dirs={experiment_dir} --out=reports/suite')
  return 1 if failed else 0


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  with cli.user_errors(PROGRAM, ValueError):
    spec = spec_from_flags(_SUBMISSIONS.value, _WORKLOADS.value,
                           other_names=('submission', 'workload'))
  return run_from_flags(PROGRAM, spec)


parse_flags = cli.flags_parser(PROGRAM)

if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
