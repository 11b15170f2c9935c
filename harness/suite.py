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

import pathlib
import sys
from typing import Sequence

from absl import app
from absl import flags

from harness import cli
from harness import compilation_cache
from harness import config as config_lib
from harness import isolated
from harness import jobs as jobs_lib
from harness import slurm
from harness import submission_runner
from harness import suite_runs

PROGRAM = 'harness.suite'
SUITE_FILE = suite_runs.SUITE_FILE
ASIDE_DIR = suite_runs.ASIDE_DIR

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


def run_submitit(base: config_lib.RunConfig,
                 job_list: Sequence[jobs_lib.Job], out=None) -> int:
  """Submits the jobs as one array through submitit (`harness.slurm`).

  On SLURM it prints the array's job id and returns; with submitit's local
  or debug executor it waits and prints each job's line.
  """
  out = out or sys.stdout
  submitted = slurm.submit(base, job_list, suite_runs.run_job)
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
    suite_runs.record_settings(experiment_dir, spec, base, job_list)
  chosen = job_list if index is None else [job_list[index]]
  if _LAUNCHER.value == 'slurm':
    return run_submitit(base, chosen)
  try:
    # One job alone needs no process of its own, and keeps the scheduler's
    # signals (SIGTERM before a time limit) for its run.
    results = suite_runs.run_local(base, chosen, fresh_processes=index is None)
  except isolated.Stopped as stop:
    return 128 + stop.signum
  failed = [r for r in results if r.failed]
  print(f'{len(results) - len(failed)} of {len(results)} jobs ran to a '
        f'result or were finished; scores: python -m scoring.report '
        f'--experiment_dirs={experiment_dir} --out=reports/suite')
  return 1 if failed else 0


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  compilation_cache.enable_from_flags(PROGRAM)
  with cli.user_errors(PROGRAM, ValueError):
    spec = spec_from_flags(_SUBMISSIONS.value, _WORKLOADS.value,
                           other_names=('submission', 'workload'))
  return run_from_flags(PROGRAM, spec)


parse_flags = cli.flags_parser(PROGRAM)

if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
