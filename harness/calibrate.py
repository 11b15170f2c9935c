r"""Sets a workload's target and budget: `python -m harness.calibrate`.

AlgoPerf's target-setting procedure (`harness.calibration` says where each
rule comes from), every size a flag:

1. search: each target-setting algorithm (`--candidates`, AlgoPerf's AdamW,
   NAdamW, Nesterov and heavy-ball) tries `--num_tuning_trials` points of
   its search space, every run trained to `--max_steps` (the workload's
   step budget unless given) without stopping at any target;
2. the trial with the best validation metric is chosen;
3. seeds: its point is rerun with `--num_seeds` seeds (AlgoPerf: 20);
4. the target is the median of the reruns' best validation metrics, and
   the budgets `--budget_margin` × the slowest rerun's steps and submission
   time to reach it.

Example::

  python -m harness.calibrate --workload=fmnist_fc --num_tuning_trials=3 \
      --num_seeds=5 --max_steps=500 --eval_every=25 \
      --experiment_dir=runs/calibrate/fmnist_fc \
      --record_to=workloads/calibrations/fmnist_fc.json

Each phase is a suite (`search/` and `seeds/` under --experiment_dir), so a
rerun of the same command continues where it stopped and other settings are
refused; every run is a run directory scoring can read. The record goes to
`calibration.json` there, and to --record_to when given. The runner's flags
(`--eval_every`, `--train_size`, ...) pass through to every run. Runs go one
after another on this machine, each in a process of its own.

Exit status: 0 with a record written; 1 when no target could be set (one
line says why); 2 for bad input (one line); 128 + the signal when SIGTERM
or Ctrl-C stopped it (the running job checkpointed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import shlex
import sys
from typing import Sequence, TextIO

from absl import app
from absl import flags

from harness import calibration
from harness import cli
from harness import compilation_cache
from harness import config as config_lib
from harness import isolated
from harness import jobs as jobs_lib
from harness import provenance
from harness import records
from harness import submission_runner
# Defines the suite's flags, which a calibration refuses (_NOT_TAKEN).
from harness import suite  # pylint: disable=unused-import
from harness import suite_runs
from workloads import base as base_lib
from workloads import registry

PROGRAM = 'harness.calibrate'

# AlgoPerf's target-setting algorithms.
TARGET_SETTING = ('adamw', 'nadamw', 'nesterov', 'heavy_ball')
SEARCH_DIR = 'search'
SEEDS_DIR = 'seeds'

_CANDIDATES = flags.DEFINE_list(
    'candidates', list(TARGET_SETTING),
    'Target-setting algorithms: baseline names or submission files.')
_NUM_SEEDS = flags.DEFINE_integer(
    'num_seeds', 5, 'Reruns of the chosen point (AlgoPerf: 20).',
    lower_bound=1)
_BUDGET_MARGIN = flags.DEFINE_float(
    'budget_margin', 2.0, 'Budgets are this × the slowest rerun\'s steps '
    'and submission time to reach the target.', lower_bound=1.0)
_RECORD_TO = flags.DEFINE_string(
    'record_to', None, 'Also write the record here (e.g. '
    'workloads/calibrations/<workload>.json, which the workload cites).')

DEFAULT_TRIALS = 4
# Flags of the runner and the suite that a calibration sets itself.
_NOT_TAKEN = ('submission', 'submissions', 'workloads', 'hparams',
              'search_space', 'study', 'trial', 'num_studies', 'job_index',
              'list_jobs', 'launcher', 'keep_training_past_target',
              'tuning_ruleset')


@dataclasses.dataclass(frozen=True)
class Calibration:
  """What a calibration runs.

  Attributes:
    workload: the workload to calibrate.
    candidates: the target-setting algorithms.
    trials_per_candidate: search points each.
    num_seeds: reruns of the chosen point.
    budget_margin: budgets are this × the slowest rerun's time to target.
    seed: seeds the search's suite (and, plus one, the reruns').
  """

  workload: str
  candidates: tuple[str, ...] = TARGET_SETTING
  trials_per_candidate: int = DEFAULT_TRIALS
  num_seeds: int = 5
  budget_margin: float = 2.0
  seed: int = 0

  def __post_init__(self):
    registry.get(self.workload)  # An unknown name, one line.
    if not self.candidates:
      raise ValueError('name at least one target-setting algorithm')
    if self.trials_per_candidate < 1 or self.num_seeds < 1:
      raise ValueError('num_tuning_trials and num_seeds must be >= 1')
    if not self.budget_margin >= 1.0:
      raise ValueError(f'budget_margin must be >= 1, got {self.budget_margin}')

  def search_spec(self) -> jobs_lib.SuiteSpec:
    return jobs_lib.SuiteSpec(
        submissions=self.candidates, workloads=(self.workload,),
        num_trials=self.trials_per_candidate, seed=self.seed)

  def seeds_spec(self, chosen: calibration.CalibrationRun
                 ) -> jobs_lib.SuiteSpec:
    # A list of one point, sampled once per study: one rerun per study.
    return jobs_lib.SuiteSpec(
        submissions=(chosen.submission,), workloads=(self.workload,),
        num_studies=self.num_seeds,
        search_space=json.dumps([chosen.hparams], sort_keys=True),
        seed=self.seed + 1)


def run_config(base: config_lib.RunConfig, workload: base_lib.Workload
               ) -> config_lib.RunConfig:
  """Every calibration run: trained to its steps, whatever it reaches.

  The workload's own runtime budget, the thing being set, does not cut a
  run short unless --max_runtime says so.
  """
  return dataclasses.replace(
      base, workload=workload.name,
      max_steps=base.max_steps or workload.step_budget, stop_at_target=False,
      max_runtime_s=base.max_runtime_s or math.inf)


@dataclasses.dataclass(frozen=True)
class _Metric:
  """The target metric, as the runs' records name it."""

  name: str
  higher_is_better: bool


def _run_phase(base: config_lib.RunConfig, spec: jobs_lib.SuiteSpec,
               name: str, metric: _Metric, out: TextIO,
               fresh_processes: bool) -> list[calibration.CalibrationRun]:
  """Runs (or continues) one phase's suite; what each run reached."""
  directory = pathlib.Path(base.experiment_dir) / name
  phase = dataclasses.replace(base, experiment_dir=str(directory))
  job_list = jobs_lib.expand(
      spec, study_seeds=jobs_lib.recorded_seeds(directory, spec))
  suite_runs.record_settings(directory, spec, phase, job_list)
  print(f'{name}: {len(job_list)} runs of {base.max_steps} steps',
        file=out, flush=True)
  suite_runs.run_local(phase, job_list, out, fresh_processes=fresh_processes)
  return [_read(job, directory, metric) for job in job_list]


def _read(job: jobs_lib.Job, directory: pathlib.Path, metric: _Metric
          ) -> calibration.CalibrationRun:
  try:
    run = records.read_run(job.run_dir(directory))
  except records.RecordError:  # Failed before its first record.
    return calibration.CalibrationRun(
        submission=job.submission, study=job.study, trial=job.trial,
        seed=job.seed, hparams=dict(job.hparams), status='no records',
        best_value=None, best_step=None,
        curve=calibration.Curve(steps=(), submission_time_s=(), values=()))
  return calibration.calibration_run(
      run, submission=job.submission, seed=job.seed, metric=metric.name,
      higher_is_better=metric.higher_is_better)


def calibrate(settings: Calibration, base: config_lib.RunConfig, *,
              command: str, out: TextIO | None = None,
              fresh_processes: bool = True
              ) -> calibration.CalibrationRecord:
  """Runs both phases and writes `calibration.json` in the experiment dir.

  Args:
    settings: what to run.
    base: the runner's settings for every run (its workload, submission,
      hyperparameters, study and trial are the calibration's own).
    command: the command line, for the record.
    out: where progress goes (stdout).
    fresh_processes: each run in a process of its own (see
      `harness.isolated`), so no run's timed first step reuses another's
      compilation; the budget in seconds depends on it.

  Raises:
    calibration.CalibrationError: no target could be set.
    isolated.Stopped: a signal stopped a run; rerunning continues.
  """
  out = out or sys.stdout
  workload = registry.get(settings.workload)
  base = run_config(base, workload)
  metric = _Metric(f'validation/{workload.target_metric_name}',
                   workload.target_higher_is_better)
  higher = metric.higher_is_better
  search = _run_phase(base, settings.search_spec(), SEARCH_DIR, metric, out,
                      fresh_processes)
  chosen = calibration.choose(search, higher_is_better=higher)
  print(f'chosen: {chosen.submission} {chosen.hparams} (best '
        f'{chosen.best_value} at step {chosen.best_step})', file=out,
        flush=True)
  seeds = _run_phase(base, settings.seeds_spec(chosen), SEEDS_DIR, metric,
                     out, fresh_processes)
  found = calibration.target_and_budget(
      seeds, higher_is_better=higher, budget_margin=settings.budget_margin)
  record = calibration.CalibrationRecord(
      workload=settings.workload,
      target_metric=metric.name,
      higher_is_better=higher, candidates=settings.candidates,
      trials_per_candidate=settings.trials_per_candidate,
      num_seeds=settings.num_seeds, max_steps=base.max_steps,
      eval_every=base.eval_every, budget_margin=settings.budget_margin,
      seed=settings.seed, search=tuple(search),
      chosen_submission=chosen.submission,
      chosen_hparams=dict(chosen.hparams), seeds=tuple(seeds),
      target_value=found.target_value, step_budget=found.step_budget,
      runtime_budget_s=found.runtime_budget_s,
      devices=records.Devices(**provenance.devices()),
      versions=provenance.versions(), command=command,
      date=provenance.now_iso())
  records.write_json_atomic(
      pathlib.Path(base.experiment_dir) / calibration.RECORD_FILE, record)
  return record


def _refuse_flags_it_sets() -> None:
  given = [f'--{name}' for name in _NOT_TAKEN if flags.FLAGS[name].present]
  if given:
    raise cli.UserError(
        f'{", ".join(given)} not taken here: a calibration chooses its '
        'submissions (--candidates), points (their search spaces, '
        '--num_tuning_trials), seeds (--num_seeds) and trains every run to '
        '--max_steps')


def main(argv: Sequence[str]) -> int:
  cli.no_arguments(PROGRAM, argv)
  compilation_cache.enable_from_flags(PROGRAM)
  with cli.user_errors(PROGRAM, ValueError):
    _refuse_flags_it_sets()
    if not flags.FLAGS.workload:
      raise cli.UserError('say which workload to calibrate: --workload=NAME')
    settings = Calibration(
        workload=flags.FLAGS.workload, candidates=tuple(_CANDIDATES.value),
        trials_per_candidate=(flags.FLAGS.num_tuning_trials or
                              DEFAULT_TRIALS),
        num_seeds=_NUM_SEEDS.value, budget_margin=_BUDGET_MARGIN.value,
        seed=flags.FLAGS.seed)
    base = submission_runner.config_from_flags()
  command = shlex.join(['python', '-m', PROGRAM, *sys.argv[1:]])
  try:
    with cli.user_errors(PROGRAM, jobs_lib.JobsError):
      record = calibrate(settings, base, command=command)
  except calibration.CalibrationError as e:
    print(f'{PROGRAM}: {e}', file=sys.stderr, flush=True)
    return 1
  except isolated.Stopped as stop:
    return 128 + stop.signum
  if _RECORD_TO.value:
    record_to = pathlib.Path(_RECORD_TO.value)
    record_to.parent.mkdir(parents=True, exist_ok=True)
    records.write_json_atomic(record_to, record)
  relation = '>=' if record.higher_is_better else '<='
  print(f'target {record.target_metric} {relation} {record.target_value} '
        f'(median of {record.num_seeds} seeds of {record.chosen_submission}); '
        f'budget {record.step_budget} steps, {record.runtime_budget_s:.0f} s; '
        f'record: {pathlib.Path(base.experiment_dir) / calibration.RECORD_FILE}'
        + (f' and {_RECORD_TO.value}' if _RECORD_TO.value else ''))
  return 0


parse_flags = cli.flags_parser(PROGRAM)

if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
