"""The suite's SLURM launcher: one array job through submitit.

Each array task runs one job of the suite (`harness.suite_runs.run_job`) on its
own device set, with the resources the flags give. submitit pickles the
call, so a task needs this project importable where it runs (the same
checkout and environment, on a shared file system). `--submitit_cluster`
picks submitit's local or debug executor instead of SLURM, to try the
launcher on a machine without SLURM.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable, Sequence

from absl import flags

from harness import config as config_lib
from harness import jobs as jobs_lib

_PARTITION = flags.DEFINE_string('slurm_partition', None,
                                 'SLURM partition of the array job.')
_ACCOUNT = flags.DEFINE_string('slurm_account', None,
                               'SLURM account to charge.')
_GPUS = flags.DEFINE_integer('slurm_gpus_per_job', 1,
                             'GPUs of each array task (its device set).',
                             lower_bound=0)
_TIME_MIN = flags.DEFINE_integer('slurm_time_min', 60,
                                 'Time limit of each array task, minutes.',
                                 lower_bound=1)
_PARALLELISM = flags.DEFINE_integer(
    'slurm_array_parallelism', 256,
    'Array tasks that may run at once.', lower_bound=1)
_LOG_DIR = flags.DEFINE_string(
    'slurm_log_dir', None,
    'Where submitit keeps its logs and pickles (default: '
    '<experiment_dir>/submitit).')
_CLUSTER = flags.DEFINE_enum(
    'submitit_cluster', 'slurm', ['slurm', 'local', 'debug'],
    'submitit executor: slurm, or local (subprocesses here) and debug (in '
    'this process) to try the launcher without SLURM.')


def log_dir(base: config_lib.RunConfig) -> str:
  return _LOG_DIR.value or str(pathlib.Path(base.experiment_dir) / 'submitit')


def waits() -> bool:
  """Whether the executor runs the jobs here, so their results come back
  now (submitit's local and debug executors), rather than on SLURM."""
  return _CLUSTER.value != 'slurm'


def submit(base: config_lib.RunConfig, job_list: Sequence[jobs_lib.Job],
           run_job: Callable[[config_lib.RunConfig, jobs_lib.Job], Any]
           ) -> list[Any]:
  """Submits `run_job(base, job)` for every job as one array.

  Returns:
    The submitit jobs, in the order of `job_list` (`.job_id`, `.result()`).
  """
  import submitit  # pylint: disable=g-import-not-at-top
  executor = submitit.AutoExecutor(folder=log_dir(base),
                                   cluster=_CLUSTER.value)
  parameters = {'timeout_min': _TIME_MIN.value, 'name': 'aeosperf-suite'}
  if _CLUSTER.value == 'slurm':
    parameters.update(
        slurm_partition=_PARTITION.value, slurm_account=_ACCOUNT.value,
        gpus_per_node=_GPUS.value, tasks_per_node=1, nodes=1,
        slurm_array_parallelism=_PARALLELISM.value)
    parameters = {k: v for k, v in parameters.items() if v is not None}
  executor.update_parameters(**parameters)
  return executor.map_array(run_job, [base] * len(job_list), list(job_list))
