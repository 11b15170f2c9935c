r"""Runs a submission on a workload: `python -m harness.submission_runner`.

Example::

  python -m harness.submission_runner --workload=fmnist_fc \
      --submission=adam_nobc --hparams='{"learning_rate": 1e-3}' \
      --experiment_dir=runs --curvature_every=10

AlgoPerf's command lines run too: `--submission_path` and
`--tuning_search_space` are other names of `--submission` and
`--search_space` (both names with different values is an error),
`--experiment_name` joins `--experiment_dir` as in AlgoPerf, and
`--tuning_ruleset=self` refuses hyperparameters and gives 1.5 × the
runtime budget, as AlgoPerf's runner does. One run is one trial:
`--trial=i` (from 0) is the run AlgoPerf calls `trial_{i+1}`, and
`--num_tuning_trials`, when given, only bounds it.

This module only parses flags; `harness.runner.train` does the work.

Exit status:

- 0: the run ended as a result: target reached, budget exhausted, diverged,
  or training ended by the submission (AlgoPerf's TrainingCompleteError).
- 1: an exception inside the run (in the submission's update, say); it is
  recorded in the run directory's `summary.json`, and one line names it and
  the directory (`--verbose` adds the traceback).
- 2: an expected user error, before anything is trained: a bad flag value,
  malformed `--hparams` or `--search_space`, an unknown workload or
  submission, missing data, a run directory that holds a finished run (or
  is in use). One line, `harness.submission_runner: error: ...`, says what
  is wrong and what to do; `--verbose` adds the traceback.
- 130 (Ctrl-C) or 128 + the signal (143 for SIGTERM): the run was stopped
  and checkpointed; the same command resumes it.

A run over several processes (`--distributed`, or `--coordinator_address`,
`--num_processes` and `--process_id`) is the same command started on every
host; `harness.distributed` says how they agree and what happens when one
dies.

A traceback without `--verbose` is a bug in the harness.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys

from absl import app
from absl import flags

from harness import cli
from harness import compilation_cache
from harness import config as config_lib
from harness import distributed
from submissions import hparams as hparams_lib
from workloads import base

PROGRAM = 'harness.submission_runner'
# Every default below is read from the config dataclasses, where it is set.
_RUN = {f.name: f.default for f in dataclasses.fields(config_lib.RunConfig)}
_DATA = _RUN['data']
# The command line starts from CurvatureConfig's defaults (probes at the
# events), not from RunConfig's NO_CURVATURE, the default of runs built in
# code.
_CURV = config_lib.CurvatureConfig()

_WORKLOAD = flags.DEFINE_string('workload', None, 'Registered workload name.')
_SUBMISSION = flags.DEFINE_string(
    'submission', None, 'Baseline name (e.g. adam_nobc) or path to a .py.')
_HPARAMS = flags.DEFINE_string(
    'hparams', None, 'Inline JSON object or path to a JSON file; values '
    'override the submission\'s DEFAULT_HPARAMS and --search_space\'s. A '
    'search space (a list of points, or min/max and feasible_points '
    'ranges) gives the point of --trial.')
_SEARCH_SPACE = flags.DEFINE_string(
    'search_space', None, 'AlgoPerf-format search space (inline JSON or '
    'file): a list of points, one per trial, or min/max and feasible_points '
    'ranges; the trial takes point --trial of study --study.')
_EXPERIMENT_DIR = flags.DEFINE_string('experiment_dir', _RUN['experiment_dir'],
                                      'Root directory of run records.')
_STUDY = flags.DEFINE_integer('study', _RUN['study'], 'Tuning study index.')
_TRIAL = flags.DEFINE_integer(
    'trial', _RUN['trial'],
    'Tuning trial index from 0 (e.g. $SLURM_ARRAY_TASK_ID): point i of a '
    'list of points; AlgoPerf numbers the same run trial_{i+1}.')
_SEED = flags.DEFINE_integer('seed', _RUN['seed'], 'Random seed.')
_MAX_STEPS = flags.DEFINE_integer('max_steps', _RUN['max_steps'],
                                  'Step budget (default: the workload\'s).')
_MAX_RUNTIME = flags.DEFINE_float(
    'max_runtime_s', _RUN['max_runtime_s'],
    'Submission-time budget in seconds.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', _RUN['eval_every'],
                                   'Evaluate every this many steps.')
_EVAL_RESIDENT_GB = flags.DEFINE_float(
    'eval_resident_gb', _RUN['eval_resident_gb'],
    'Evaluation splits up to this many GB stay on the devices; larger ones '
    'are streamed from host memory one chunk at a time.')
_KEEP_TRAINING = flags.DEFINE_bool(
    'keep_training_past_target', not _RUN['stop_at_target'],
    'Train to the budget after the target is reached.')
_DATA_DIR = flags.DEFINE_string('data_dir', _DATA.data_dir,
                                'TFDS data directory (default TFDS_DATA_DIR).')
_DATA_SOURCE = flags.DEFINE_string(
    'data_source', _DATA.source,
    'Data source of the workload, e.g. bundled, idx or tfds for Fashion-MNIST.')
_FULL_BATCH = flags.DEFINE_bool('full_batch', _RUN['full_batch'],
                                'Force full-batch (true) or minibatch (false).')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', _RUN['train_size'],
                                   'Training examples in use.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _RUN['batch_size'],
                                   'Minibatch size.')
_CHUNK_SIZE = flags.DEFINE_integer(
    'chunk_size', _RUN['chunk_size'],
    'Examples per gradient-accumulation chunk.')
_LOG_EVERY = flags.DEFINE_integer(
    'log_every', _RUN['log_every'],
    'Synchronise, check for NaN and print a progress line every N steps (on '
    'a terminal a progress bar shows them instead); evaluations and probes '
    'print their own lines.')
_QUIET = flags.DEFINE_bool('quiet', _RUN['quiet'], 'No progress lines.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', _RUN['overwrite'],
    'Replace a finished or unfinished run in the run directory (never a '
    'live one).')
_RESUME = flags.DEFINE_bool(
    'resume', _RUN['resume'],
    'Continue an unfinished run in the run directory from its last '
    'checkpoint; --noresume refuses such a directory.')
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every', _RUN['checkpoint_every'],
    'Checkpoint every N steps (0: not by steps).')
_CHECKPOINT_EVERY_S = flags.DEFINE_float(
    'checkpoint_every_s', _RUN['checkpoint_every_s'],
    'Checkpoint when this many seconds of wall time passed since the last '
    '(0: not by time). SIGTERM and Ctrl-C always checkpoint.')
_CURVATURE_EVERY = flags.DEFINE_integer(
    'curvature_every', _CURV.every,
    'Curvature probe every N steps (0: none on a schedule).')
_CURVATURE_LOG = flags.DEFINE_bool('curvature_log_spaced', _CURV.log_spaced,
                                   'Also probe at log-spaced steps.')
_CURVATURE_EVENTS = flags.DEFINE_bool(
    'curvature_at_events', _CURV.at_events,
    'Probe at the target, at the solution and at the end.')
_CURVATURE_K = flags.DEFINE_integer('curvature_top_k', _CURV.top_k,
                                    'Top eigenvalues per probe.')
_CURVATURE_WARM_START = flags.DEFINE_bool(
    'curvature_warm_start', _CURV.warm_start,
    'Start Lanczos from the previous probe\'s top eigenvectors.')
_LANCZOS_ITERS = flags.DEFINE_integer(
    'lanczos_iterations', _CURV.num_iterations,
    'Lanczos iteration cap per probe.')
_CURVATURE_CHUNK = flags.DEFINE_integer(
    'curvature_chunk_size', _CURV.chunk_size,
    'Examples per chunk of the curvature batch (0: --chunk_size). Larger '
    'chunks make the probe\'s products cheaper where memory allows.')
_LANCZOS_TOL = flags.DEFINE_float(
    'lanczos_tol', _CURV.tol or 0.0,
    'Relative residual at which Lanczos stops (0: never).')
_SAVE_PRECONDITIONER = flags.DEFINE_list(
    'save_preconditioner_at',
    [str(s) for s in _RUN['save_preconditioner_at']],
    'Steps at which to save the preconditioner for frozen_adam.')
_TENSORBOARD = flags.DEFINE_string(
    'tensorboard', _RUN['tensorboard'],
    'Also write the records\' scalars live as TensorBoard event files under '
    'this log directory (needs tensorboardX; empty: off).')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False,
    'Run over several processes (hosts) with jax.distributed: the same '
    'command on each; the coordinator, the process count and this '
    'process\'s id come from the flags below, else from the cluster '
    '(SLURM, Kubernetes, Open MPI).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None,
    'host:port of process 0, which coordinates a run over several processes '
    '(implies --distributed).')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None,
    'Processes of a run over several processes (implies --distributed).',
    lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None,
    'This process\'s index, from 0, in a run over several processes '
    '(implies --distributed).', lower_bound=0)
_DISTRIBUTED_TIMEOUT = flags.DEFINE_integer(
    'distributed_timeout_s', distributed.DEFAULT_TIMEOUT_S,
    'A process of the run silent this long is declared dead and the others '
    'stop; one that ends while the others still wait for it stops them '
    'after as long.', lower_bound=1)

# AlgoPerf's names for flags of ours that mean the same, so its command
# lines run as they are; each is the same flag under a second name.
_ALIASES = (('submission_path', 'submission'),
            ('tuning_search_space', 'search_space'))
_ALIAS_FLAGS = tuple(flags.DEFINE_alias(alias, original)
                     for alias, original in _ALIASES)
# AlgoPerf's flags that differ from any of ours.
_NUM_TUNING_TRIALS = flags.DEFINE_integer(
    'num_tuning_trials', None,
    'AlgoPerf\'s number of trials of a study, accepted so its command lines '
    'run. It starts no trials: one run is one trial, the one --trial names, '
    'counted from 0 (--trial=0 is AlgoPerf\'s trial_1), so a study of N '
    'trials is N runs, --trial=0 to --trial=N-1. When given, --trial must be '
    'below it.', lower_bound=1)
_TUNING_RULESET = flags.DEFINE_enum_class(
    'tuning_ruleset', config_lib.TuningRuleset.EXTERNAL,
    config_lib.TuningRuleset,
    'AlgoPerf\'s tuning ruleset: external (hyperparameters from --hparams or '
    '--search_space) or self (the submission tunes itself; both refused).')
_EXPERIMENT_NAME = flags.DEFINE_string(
    'experiment_name', None,
    'As in AlgoPerf, records go to --experiment_dir/--experiment_name '
    '(unset: to --experiment_dir).')


def _hparams() -> dict:
  """The trial's hyperparameters: --search_space's point, then --hparams.

  Raises:
    cli.UserError: hyperparameters for a self-tuning submission, or a
      --trial that --num_tuning_trials does not allow.
    hparams_lib.HparamsError: malformed hyperparameters or search space.
  """
  given = [f'--{flag.name}' for flag in (_HPARAMS, _SEARCH_SPACE)
           if flag.value]
  if _TUNING_RULESET.value is config_lib.TuningRuleset.SELF and given:
    raise cli.UserError(
        f'--tuning_ruleset=self: the submission tunes itself, so it takes no '
        f'{" or ".join(given)}; drop them or use --tuning_ruleset=external')
  trials = _NUM_TUNING_TRIALS.value
  if trials is not None and _TRIAL.value >= trials:
    raise cli.UserError(
        f'--trial={_TRIAL.value} is not below --num_tuning_trials={trials}: '
        f'a run is one trial, counted from 0 (--trial=0 is AlgoPerf\'s '
        f'trial_1); run the study as --trial=0 to --trial={trials - 1}')
  hparams = hparams_lib.load_hparams(_HPARAMS.value, _STUDY.value,
                                     _TRIAL.value)
  if _SEARCH_SPACE.value:
    space = hparams_lib.SearchSpace.from_json(_SEARCH_SPACE.value)
    hparams = {**space.point(_STUDY.value, _TRIAL.value), **hparams}
  return hparams


def _experiment_dir() -> str:
  """--experiment_dir, joined with --experiment_name as AlgoPerf joins them.

  Raises:
    cli.UserError: a name that would leave --experiment_dir.
  """
  name = _EXPERIMENT_NAME.value
  if name is None:
    return _EXPERIMENT_DIR.value
  parts = pathlib.PurePath(name).parts
  if not parts or pathlib.PurePath(name).is_absolute() or '..' in parts:
    raise cli.UserError(
        f'--experiment_name={name!r} must name a directory inside '
        '--experiment_dir: not empty, not absolute, no ".."')
  return os.path.join(_EXPERIMENT_DIR.value, name)


def config_from_flags() -> config_lib.RunConfig:
  """The run the parsed flags describe."""
  hparams = _hparams()
  curvature = config_lib.CurvatureConfig(
      every=_CURVATURE_EVERY.value, log_spaced=_CURVATURE_LOG.value,
      at_events=_CURVATURE_EVENTS.value, top_k=_CURVATURE_K.value,
      num_iterations=_LANCZOS_ITERS.value, tol=_LANCZOS_TOL.value or None,
      warm_start=_CURVATURE_WARM_START.value,
      chunk_size=_CURVATURE_CHUNK.value)
  return config_lib.RunConfig(
      workload=_WORKLOAD.value, submission=_SUBMISSION.value,
      hparams=hparams_lib.to_jsonable(hparams),
      experiment_dir=_experiment_dir(), study=_STUDY.value,
      trial=_TRIAL.value, seed=_SEED.value, max_steps=_MAX_STEPS.value,
      max_runtime_s=_MAX_RUNTIME.value, eval_every=_EVAL_EVERY.value,
      eval_resident_gb=_EVAL_RESIDENT_GB.value,
      stop_at_target=not _KEEP_TRAINING.value,
      data=base.DataConfig(data_dir=_DATA_DIR.value,
                           source=_DATA_SOURCE.value),
      full_batch=_FULL_BATCH.value, train_size=_TRAIN_SIZE.value,
      batch_size=_BATCH_SIZE.value, chunk_size=_CHUNK_SIZE.value,
      log_every=_LOG_EVERY.value, quiet=_QUIET.value,
      overwrite=_OVERWRITE.value, resume=_RESUME.value,
      checkpoint_every=_CHECKPOINT_EVERY.value,
      checkpoint_every_s=_CHECKPOINT_EVERY_S.value, curvature=curvature,
      save_preconditioner_at=tuple(int(s) for s in
                                   _SAVE_PRECONDITIONER.value),
      tensorboard=_TENSORBOARD.value,
      tuning_ruleset=_TUNING_RULESET.value)


_parse = cli.flags_parser(PROGRAM)


def _values_by_name(argv: list[str]) -> dict[str, list[str]]:
  """The values `argv` gives each aliased flag, under each of its names."""
  given = flags.FlagValues()
  for pair in _ALIASES:
    for name in pair:
      flags.DEFINE_multi_string(name, [], '', flag_values=given)
  given(list(argv), known_only=True)
  return {name: given[name].value for pair in _ALIASES for name in pair}


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing (see `cli.flags_parser`), refusing a flag and its alias
  given different values: which was meant is unknown. Exit 2, one line."""
  rest = _parse(argv)
  values = _values_by_name(argv)
  for alias, original in _ALIASES:
    if values[alias] and values[original] and len(
        set(values[alias] + values[original])) > 1:
      cli.fail(PROGRAM, f'--{alias}={values[alias][-1]} and '
               f'--{original}={values[original][-1]} are one setting given '
               'two values; give one of them')
  return rest


def _cluster() -> distributed.Cluster | None:
  """The processes to join, or None for a run of this process alone."""
  given = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if not _DISTRIBUTED.value and all(value is None for value in given):
    return None
  return distributed.Cluster(*given, timeout_s=_DISTRIBUTED_TIMEOUT.value)


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  cluster = _cluster()
  if cluster is not None:  # Before anything else starts JAX's runtime.
    with cli.user_errors(PROGRAM, distributed.DistributedError):
      distributed.initialize(cluster)
  compilation_cache.enable_from_flags(PROGRAM)
  # pylint: disable=g-import-not-at-top
  from harness import preflight
  from harness import run_directory
  from harness import runner
  from harness import termination
  # pylint: enable=g-import-not-at-top
  with cli.user_errors(PROGRAM, ValueError):  # Values the config refuses.
    config = config_from_flags()
  try:
    with cli.user_errors(PROGRAM, preflight.SetupError,
                         run_directory.RunDirectoryError):
      result = runner.train(config)
  except runner.RunFailed as e:
    status = cli.run_failed(PROGRAM, e, e.line, e.exit_status)
    if isinstance(e.__cause__, distributed.ProcessLost):
      distributed.leave(status)  # JAX's shutdown would wait for it.
    return status
  print(result.run_dir)
  # Diverged and out-of-budget runs are results; a stopped run is not
  # finished, and says so to the scheduler as a shell would (128 + signal).
  if result.stopped_by is not None:
    return termination.exit_status(result.stopped_by)
  return 130 if result.status == runner.Status.INTERRUPTED else 0


if __name__ == '__main__':
  flags.mark_flags_as_required(['workload', 'submission'])
  sys.exit(app.run(main, flags_parser=parse_flags))
