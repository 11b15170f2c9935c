"""A figure's training runs, as a suite: resumable, and fanned out alike.

The points of a figure's grid are an explicit search space (a list of
points), so the sweep is `harness.suite`'s own job list: its runs land in
`<experiment_dir>/<workload>/<submission>/study_0/trial_T/`, a rerun of the
same sweep skips finished trials, the settings are kept in `suite.json`,
and `python -m harness.suite --search_space=... --job_index=I` with the
same flags runs one trial of it anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Mapping, Sequence

from harness import config as config_lib
from harness import jobs as jobs_lib
from harness import records
from harness import suite_runs


def run(submission: str, workload: str, points: Sequence[Mapping[str, Any]],
        base: config_lib.RunConfig, *, out=None) -> list[records.RunRecord]:
  """Trains every point (or skips it as finished); their records, in the
  order of `points`.

  Args:
    submission, workload: what every run trains.
    points: the hyperparameters of each run.
    base: the runner's settings every run shares (its experiment_dir is
      the sweep's).
    out: where the suite's progress lines go (stdout).

  The runs share this process (the suite would give each its own): a
  figure's statistics do not read the clock, so no run's compilation can
  favour another's, and one process skips the imports of each.
  """
  spec = jobs_lib.SuiteSpec(
      submissions=(submission,), workloads=(workload,),
      num_trials=len(points),
      search_space=json.dumps([dict(p) for p in points], sort_keys=True))
  experiment_dir = pathlib.Path(base.experiment_dir)
  job_list = jobs_lib.expand(
      spec, study_seeds=jobs_lib.recorded_seeds(experiment_dir, spec))
  suite_runs.record_settings(experiment_dir, spec, base, job_list)
  suite_runs.run_local(base, job_list, out, fresh_processes=False)
  by_point = {json.dumps(dict(job.hparams), sort_keys=True): job
              for job in job_list}
  return [records.read_run(by_point[json.dumps(dict(p), sort_keys=True)]
                           .run_dir(experiment_dir)) for p in points]


def single(submission: str, workload: str, point: Mapping[str, Any],
           experiment_dir: str | pathlib.Path, **sizes) -> records.RunRecord:
  """One full-batch run of `point` as a sweep of its own (`full_batch`'s
  `sizes`: train_size, steps, curvature_every); its record."""
  (record,) = run(submission, workload, [point], full_batch(
      workload, submission, experiment_dir, **sizes))
  return record


def full_batch(workload: str, submission: str,
               experiment_dir: str | pathlib.Path, *, train_size: int,
               steps: int, curvature_every: int) -> config_lib.RunConfig:
  """The paper's setting, as the main job's: full-batch steps on
  `train_size` examples, all `steps` of them (past any target and budget),
  λ1(H) and λ1(P⁻¹H) probed every `curvature_every` steps."""
  return config_lib.RunConfig(
      workload=workload, submission=submission,
      experiment_dir=str(experiment_dir), max_steps=steps,
      max_runtime_s=math.inf, eval_every=steps, stop_at_target=False,
      full_batch=True, train_size=train_size,
      chunk_size=min(train_size, 1000), quiet=True,
      curvature=config_lib.CurvatureConfig(every=curvature_every))


def minibatch(workload: str, submission: str,
              experiment_dir: str | pathlib.Path, *, train_size: int,
              batch_size: int, steps: int,
              curvature_every: int) -> config_lib.RunConfig:
  """`full_batch`'s run, with steps on minibatches of `batch_size` drawn
  from the `train_size` examples (a fresh permutation each epoch) in the
  workload's chunks. The probe still measures one fixed batch: the first
  `min(workload.curvature_batch_size, train_size)` examples
  (`harness.probe`)."""
  return dataclasses.replace(
      full_batch(workload, submission, experiment_dir, train_size=train_size,
                 steps=steps, curvature_every=curvature_every),
      full_batch=False, batch_size=batch_size, chunk_size=None)
