r"""Runs a submission on a workload: `python -m harness.submission_runner`.

Example::

  python -m harness.submission_runner --workload=fmnist_fc \
      --submission=adam_nobc --hparams='{"learning_rate": 1e-3}' \
      --experiment_dir=runs --curvature_every=10

This module only parses flags; `harness.runner.train` does the work.

Exit status:

- 0: the run ended as a result: target reached, budget exhausted, diverged.
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

A traceback without `--verbose` is a bug in the harness.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app
from absl import flags

from harness import cli
from harness import config as config_lib
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
    'override the submission\'s DEFAULT_HPARAMS.')
_SEARCH_SPACE = flags.DEFINE_string(
    'search_space', None, 'AlgoPerf-format search space (inline JSON or '
    'file); the trial takes point --trial of study --study.')
_EXPERIMENT_DIR = flags.DEFINE_string('experiment_dir', _RUN['experiment_dir'],
                                      'Root directory of run records.')
_STUDY = flags.DEFINE_integer('study', _RUN['study'], 'Tuning study index.')
_TRIAL = flags.DEFINE_integer(
    'trial', _RUN['trial'],
    'Tuning trial index (e.g. $SLURM_ARRAY_TASK_ID).')
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
    'Call jax.distributed.initialize() to join a multi-host run.')


def config_from_flags() -> config_lib.RunConfig:
  """The run the parsed flags describe."""
  hparams = hparams_lib.load_hparams(_HPARAMS.value)
  if _SEARCH_SPACE.value:
    space = hparams_lib.SearchSpace.from_json(_SEARCH_SPACE.value)
    hparams = {**space.point(_STUDY.value, _TRIAL.value), **hparams}
  curvature = config_lib.CurvatureConfig(
      every=_CURVATURE_EVERY.value, log_spaced=_CURVATURE_LOG.value,
      at_events=_CURVATURE_EVENTS.value, top_k=_CURVATURE_K.value,
      num_iterations=_LANCZOS_ITERS.value, tol=_LANCZOS_TOL.value or None,
      warm_start=_CURVATURE_WARM_START.value)
  return config_lib.RunConfig(
      workload=_WORKLOAD.value, submission=_SUBMISSION.value,
      hparams=hparams_lib.to_jsonable(hparams),
      experiment_dir=_EXPERIMENT_DIR.value, study=_STUDY.value,
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
      tensorboard=_TENSORBOARD.value)


parse_flags = cli.flags_parser(PROGRAM)


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  if _DISTRIBUTED.value:
    import jax  # pylint: disable=g-import-not-at-top
    jax.distributed.initialize()
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
    return cli.run_failed(PROGRAM, e, e.line, e.exit_status)
  print(result.run_dir)
  # Diverged and out-of-budget runs are results; a stopped run is not
  # finished, and says so to the scheduler as a shell would (128 + signal).
  if result.stopped_by is not None:
    return termination.exit_status(result.stopped_by)
  return 130 if result.status == runner.Status.INTERRUPTED else 0


if __name__ == '__main__':
  flags.mark_flags_as_required(['workload', 'submission'])
  sys.exit(app.run(main, flags_parser=parse_flags))
