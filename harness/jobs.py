"""A suite as a numbered list of jobs: submissions × workloads × studies ×
trials, the same list for the same settings on every machine.

Each job is one trial: one `runner.train` run with its own hyperparameters
and seed, written to `<experiment_dir>/<workload>/<submission>/study_S/
trial_T/` as any run is. A study's points are a pure function of its seed,
which `study.json` in the study's directory records, so a SLURM array task
or a Kubernetes indexed Job that runs job I alone computes the same point
as a machine that runs the whole list.

Seeds depend on the suite's seed, the study and the trial only: trial t of
study s has the same seed (initialisation, data order) for every
submission and workload, so submissions are compared on paired runs.

Rulesets follow AlgoPerf (its `docs/DOCUMENTATION.md`, "Tuning"):

- external tuning: `num_trials` points a study from the submission's search
  space, by quasirandom (scrambled Halton) search over ranges, or sampled
  without replacement from a list of points;
- self-tuning: one trial a study and no hyperparameters (the runner gives
  it the larger budget, `config.TuningRuleset.budget_factor`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from harness import config as config_lib
from harness import records
from submissions import hparams as hparams_lib
from submissions import loading
from workloads import base
from workloads import registry

Ruleset = config_lib.TuningRuleset

STUDY_FILE = 'study.json'
SEARCH_SPACE_SUFFIX = '_search_space.json'
TIER_PREFIX = 'tier:'


class JobsError(ValueError):
  """Settings no job list can be made from; one line says why."""


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
  """What a suite runs; the job list is a function of it alone.

  Attributes:
    submissions: baseline names or paths of submission files.
    workloads: registered workload names.
    num_studies: studies per submission and workload.
    num_trials: trials per study under external tuning (self-tuning: 1).
    ruleset: AlgoPerf's tuning ruleset.
    search_space: one search space (JSON text or a file) for every
      submission; None takes each submission's own file beside it
      (`<name>_search_space.json`).
    seed: the suite's seed, from which every study's seed is drawn.
  """

  submissions: tuple[str, ...]
  workloads: tuple[str, ...]
  num_studies: int = 1
  num_trials: int = 1
  ruleset: Ruleset = Ruleset.EXTERNAL
  search_space: str | None = None
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'ruleset', Ruleset(self.ruleset))
    for name in ('num_studies', 'num_trials'):
      if getattr(self, name) < 1:
        raise JobsError(f'{name} must be >= 1, got {getattr(self, name)}')
    if not self.submissions or not self.workloads:
      raise JobsError('a suite needs at least one submission and one '
                      'workload')
    if self.ruleset is Ruleset.SELF and self.search_space:
      raise JobsError('a self-tuning suite takes no search space: its '
                      'submissions tune themselves')

  @property
  def trials_per_study(self) -> int:
    return 1 if self.ruleset is Ruleset.SELF else self.num_trials


@dataclasses.dataclass(frozen=True)
class Job:
  """One trial of the suite.

  Attributes:
    index: its number in the job list, from 0.
    workload, submission, study, trial: where it runs.
    hparams: its point of the search space ({} when self-tuning).
    seed: its own seed (initialisation, data order, the submission's rng).
    study_seed: the seed its study's points are drawn from.
  """

  index: int
  workload: str
  submission: str
  study: int
  trial: int
  hparams: Mapping[str, Any]
  seed: int
  study_seed: int

  def run_dir(self, experiment_dir: str | pathlib.Path) -> pathlib.Path:
    return records.run_dir(experiment_dir, self.workload,
                           loading.submission_name(self.submission),
                           self.study, self.trial)

  def describe(self) -> str:
    """One line: the job's number, run and point."""
    return (f'{self.index}\t{self.workload}\t'
            f'{loading.submission_name(self.submission)}\t'
            f'study_{self.study}/trial_{self.trial}\t'
            f'{hparams_lib.to_jsonable(self.hparams)}')


def workload_names(spec: str) -> tuple[str, ...]:
  """`tier:smoke` or a comma-separated list, as registered names.

  Raises:
    JobsError: an unknown tier or workload, naming the known ones.
  """
  if spec.startswith(TIER_PREFIX):
    tier = spec[len(TIER_PREFIX):]
    tiers = [t.value for t in base.Tier]
    if tier not in tiers:
      raise JobsError(f'unknown tier {tier!r}; known tiers: '
                      f'{", ".join(tiers)}')
    return tuple(sorted(name for name, cls in registry.WORKLOADS.items()
                        if cls.tier.value == tier))
  names = tuple(name.strip() for name in spec.split(',') if name.strip())
  unknown = [name for name in names if name not in registry.WORKLOADS]
  if unknown:
    raise JobsError(f'unknown workload {unknown[0]!r}; known workloads: '
                    f'{", ".join(registry.names())}, or {TIER_PREFIX}'
                    f'{"|".join(t.value for t in base.Tier)}')
  return names


def study_seed(suite_seed: int, study: int) -> int:
  """The seed of study `study` of a suite seeded `suite_seed`."""
  return int(np.random.SeedSequence([suite_seed, study]).generate_state(1)[0])


def trial_seed(seed_of_study: int, trial: int) -> int:
  """The seed of trial `trial` of a study seeded `seed_of_study`, in the
  range JAX's `PRNGKey` takes."""
  state = np.random.SeedSequence([seed_of_study, trial]).generate_state(1)
  return int(state[0] % 2**31)


def study_points(space: hparams_lib.SearchSpace | None, seed: int,
                 num_trials: int) -> list[dict[str, Any]]:
  """The points of a study's trials, a pure function of its seed.

  Ranges: the first `num_trials` points of a scrambled Halton sequence
  seeded by `seed`. A list of points: `num_trials` of them drawn without
  replacement. No space: the submission's defaults for every trial.

  Raises:
    JobsError: more trials than a list has points.
  """
  if space is None:
    return [{} for _ in range(num_trials)]
  if space.explicit_points is None:
    return [space.point(seed, trial) for trial in range(num_trials)]
  points = space.explicit_points
  if num_trials > len(points):
    raise JobsError(
        f'{num_trials} trials a study but the search space lists only '
        f'{len(points)} points, and a list is sampled without replacement')
  order = np.random.default_rng(seed).permutation(len(points))
  return [dict(points[i]) for i in order[:num_trials]]


def search_space_of(spec: SuiteSpec, submission: str
                    ) -> hparams_lib.SearchSpace | None:
  """The search space a submission's trials take, or None (self-tuning).

  Raises:
    JobsError: external tuning without a search space for the submission.
    hparams.HparamsError: a malformed search space.
  """
  if spec.ruleset is Ruleset.SELF:
    return None
  if spec.search_space:
    return hparams_lib.SearchSpace.from_json(spec.search_space)
  path = default_search_space(submission)
  if not path.exists():
    raise JobsError(
        f'no search space for submission {submission!r}: {path} does not '
        'exist; pass --search_space (or --tuning_ruleset=self)')
  return hparams_lib.SearchSpace.from_json(str(path),
                                           flag=f'{path.name}')


def search_space_sha256(spec: SuiteSpec, submission: str) -> str | None:
  """SHA-256 of the search space's text (its file's, or the inline JSON);
  None when the submission takes none."""
  if spec.ruleset is Ruleset.SELF:
    return None
  text = spec.search_space
  path = pathlib.Path(text) if text else default_search_space(submission)
  try:
    is_file = path.is_file()
  except OSError:  # Inline JSON too long to be a file name.
    is_file = False
  if is_file:
    text = path.read_text()
  return hashlib.sha256((text or '').encode()).hexdigest()


def default_search_space(submission: str) -> pathlib.Path:
  """`<name>_search_space.json` beside the submission's module."""
  source = pathlib.Path(loading.source_path(submission))
  return source.with_name(source.stem + SEARCH_SPACE_SUFFIX)


def expand(spec: SuiteSpec, *,
           study_seeds: Mapping[tuple[str, str, int], int] | None = None
           ) -> tuple[Job, ...]:
  """The numbered job list: submissions, then workloads, studies, trials.

  Args:
    spec: the suite.
    study_seeds: seeds recorded for (workload, submission, study) by an
      earlier run (`study.json`); missing ones are drawn from `spec.seed`.

  Raises:
    JobsError, hparams.HparamsError: a search space that cannot give the
      trials, or whose names a submission does not take.
  """
  seeds = dict(study_seeds or {})
  jobs = []
  for submission in spec.submissions:
    space = search_space_of(spec, submission)
    for workload in spec.workloads:
      for study in range(spec.num_studies):
        seed = seeds.get((workload, submission, study),
                         study_seed(spec.seed, study))
        points = study_points(space, seed, spec.trials_per_study)
        for trial, point in enumerate(points):
          jobs.append(Job(len(jobs), workload, submission, study, trial,
                          point, trial_seed(seed, trial), seed))
  _check_names(spec, jobs)
  return tuple(jobs)


def _check_names(spec: SuiteSpec, jobs: Sequence[Job]) -> None:
  """Every submission loads with the names its points give."""
  for submission in spec.submissions:
    point = next((job.hparams for job in jobs
                  if job.submission == submission), {})
    self_tuning = spec.ruleset is Ruleset.SELF
    try:
      loading.load(submission, point, self_tuning=self_tuning)
    except (hparams_lib.HparamsError, loading.SubmissionError) as e:
      raise JobsError(f'submission {submission!r}: {e}') from None
    except Exception as e:  # Its own code, e.g. hparams['lr'] of None.
      how = ' as self-tuning (hyperparameters None)' if self_tuning else ''
      raise JobsError(
          f'submission {submission!r} does not load{how}: '
          f'{type(e).__name__}: {e}') from None


@dataclasses.dataclass(frozen=True)
class StudyRecord(records.Record):
  """`study.json`: what every trial of a study is drawn from."""

  workload: str
  submission: str
  study: int
  seed: int
  ruleset: str
  points: tuple[dict[str, Any], ...]
  schema_version: int = records.SCHEMA_VERSION


def study_path(experiment_dir: str | pathlib.Path, job: Job) -> pathlib.Path:
  return job.run_dir(experiment_dir).parent / STUDY_FILE


def recorded_seeds(experiment_dir: str | pathlib.Path, spec: SuiteSpec
                   ) -> dict[tuple[str, str, int], int]:
  """The study seeds that earlier runs of the suite recorded."""
  seeds = {}
  for submission in spec.submissions:
    for workload in spec.workloads:
      for study in range(spec.num_studies):
        path = records.run_dir(experiment_dir, workload,
                               loading.submission_name(submission), study,
                               0).parent / STUDY_FILE
        if path.exists():
          seeds[(workload, submission, study)] = records.read_json(
              path, StudyRecord).seed
  return seeds


def write_study_records(experiment_dir: str | pathlib.Path, spec: SuiteSpec,
                        jobs: Sequence[Job]) -> None:
  """`study.json` of every study of `jobs` that has none yet."""
  studies: dict[pathlib.Path, list[Job]] = {}
  for job in jobs:
    studies.setdefault(study_path(experiment_dir, job), []).append(job)
  for path, members in studies.items():
    if path.exists():
      continue
    first = members[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    records.write_json_atomic(path, StudyRecord(
        workload=first.workload, submission=first.submission,
        study=first.study, seed=first.study_seed,
        ruleset=spec.ruleset.value,
        points=tuple(hparams_lib.to_jsonable(j.hparams) for j in members)))
