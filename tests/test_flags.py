"""The runner's flags: one per config field, defaults from the dataclasses."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

from harness import config as config_lib
from harness import submission_runner
from workloads import base

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS

# Config fields whose flag takes the field's default unchanged.
RUN_FLAGS = {name: name for name in (
    'experiment_dir', 'study', 'trial', 'seed', 'max_steps', 'max_runtime_s',
    'eval_every', 'eval_resident_gb', 'full_batch', 'train_size',
    'batch_size', 'chunk_size', 'log_every', 'quiet', 'overwrite', 'resume',
    'checkpoint_every', 'checkpoint_every_s', 'tensorboard',
    'tuning_ruleset')}
DATA_FLAGS = {'data_dir': 'data_dir', 'source': 'data_source'}
CURVATURE_FLAGS = {
    'every': 'curvature_every',
    'log_spaced': 'curvature_log_spaced',
    'at_events': 'curvature_at_events',
    'top_k': 'curvature_top_k',
    'num_iterations': 'lanczos_iterations',
    'warm_start': 'curvature_warm_start',
    'chunk_size': 'curvature_chunk_size',
}
# Fields whose flag differs from the field, and why; each has its own test.
RUN_EXCEPTIONS = {
    'workload': 'required flag, no default',
    'submission': 'required flag, no default',
    'hparams': 'a JSON string (or file); unset means {}',
    'stop_at_target': 'the negation --keep_training_past_target',
    'data': 'two flags, DATA_FLAGS',
    'curvature': 'CURVATURE_FLAGS, from CurvatureConfig() not NO_CURVATURE',
    'save_preconditioner_at': 'a list of strings, converted to ints',
}
CURVATURE_EXCEPTIONS = {'tol': 'None is --lanczos_tol=0'}
# Flags that are no config field.
OTHER_FLAGS = {
    'search_space': 'a source of hparams',
    'distributed': 'initialises JAX before the run',
    'coordinator_address': 'joins the run\'s processes (harness.distributed)',
    'num_processes': 'joins the run\'s processes (harness.distributed)',
    'process_id': 'joins the run\'s processes (harness.distributed)',
    'distributed_timeout_s': 'joins the run\'s processes (harness.distributed)',
    # AlgoPerf's names (tests/test_algoperf_flags.py).
    'submission_path': 'an alias of --submission',
    'tuning_search_space': 'an alias of --search_space',
    'num_tuning_trials': 'bounds --trial',
    'experiment_name': 'joins --experiment_dir',
}


def _defaults(config_class) -> dict:
  return {f.name: f.default for f in dataclasses.fields(config_class)}


# The defaults the flags take: RunConfig's fields, the fields of its default
# DataConfig, and those of CurvatureConfig().
DEFAULTS = {
    'run': _defaults(config_lib.RunConfig),
    'data': dataclasses.asdict(_defaults(config_lib.RunConfig)['data']),
    'curvature': dataclasses.asdict(config_lib.CurvatureConfig()),
}


def _config(*args: str) -> config_lib.RunConfig:
  """`config_from_flags()` after absl parses `args` as the command line."""
  with flagsaver.flagsaver():
    FLAGS(['harness.submission_runner', *args])
    return submission_runner.config_from_flags()


def test_every_config_field_has_a_flag():
  assert set(_defaults(config_lib.RunConfig)) == (
      set(RUN_FLAGS) | set(RUN_EXCEPTIONS))
  assert set(_defaults(base.DataConfig)) == set(DATA_FLAGS)
  assert set(_defaults(config_lib.CurvatureConfig)) == (
      set(CURVATURE_FLAGS) | set(CURVATURE_EXCEPTIONS))


def test_every_flag_is_a_config_field_or_listed():
  defined = {f.name for f in FLAGS.get_flags_for_module(submission_runner)}
  expected = {*RUN_FLAGS.values(), *DATA_FLAGS.values(),
              *CURVATURE_FLAGS.values(), *OTHER_FLAGS, 'workload',
              'submission', 'hparams', 'keep_training_past_target',
              'save_preconditioner_at', 'lanczos_tol'}
  assert defined == expected


@pytest.mark.parametrize('owner, field, flag', [
    pytest.param(owner, field, flag, id=f'{owner}.{field}')
    for owner, table in [('run', RUN_FLAGS), ('data', DATA_FLAGS),
                         ('curvature', CURVATURE_FLAGS)]
    for field, flag in table.items()])
def test_flag_default_is_the_field_default(owner, field, flag):
  default = DEFAULTS[owner][field]
  assert FLAGS[flag].default == default
  assert type(FLAGS[flag].default) is type(default)


def test_flags_that_differ_from_their_field():
  run = DEFAULTS['run']
  assert FLAGS['workload'].default is None
  assert FLAGS['submission'].default is None
  assert FLAGS['hparams'].default is None
  assert FLAGS['keep_training_past_target'].default == (
      not run['stop_at_target'])
  assert tuple(int(s) for s in FLAGS['save_preconditioner_at'].default) == (
      run['save_preconditioner_at'])
  tol = DEFAULTS['curvature']['tol']
  assert FLAGS['lanczos_tol'].default == (0.0 if tol is None else tol)


def test_no_optional_flags_give_the_dataclass_defaults():
  got = _config('--workload=fmnist_fc', '--submission=gd')
  assert got == config_lib.RunConfig(
      workload='fmnist_fc', submission='gd',
      curvature=config_lib.CurvatureConfig())


def test_a_realistic_command_line():
  got = _config(*shlex.split(
      '--workload=fmnist_fc --submission=adam '
      '--hparams=\'{"learning_rate": 0.001}\' --curvature_every=5 '
      '--nocurvature_warm_start --lanczos_tol=0 '
      '--save_preconditioner_at=10,20'))
  want = config_lib.RunConfig(
      workload='fmnist_fc', submission='adam',
      hparams={'learning_rate': 0.001},
      curvature=config_lib.CurvatureConfig(every=5, warm_start=False,
                                           tol=None),
      save_preconditioner_at=(10, 20))
  for field in dataclasses.fields(config_lib.CurvatureConfig):
    assert getattr(got.curvature, field.name) == getattr(
        want.curvature, field.name), field.name
  for field in dataclasses.fields(config_lib.RunConfig):
    assert getattr(got, field.name) == getattr(want, field.name), field.name
  assert all(type(s) is int for s in got.save_preconditioner_at)


def test_import_leaves_the_runner_unimported():
  # --distributed must initialise JAX before the runner's imports run.
  code = ('import sys, harness.submission_runner; '
          'assert "harness.runner" not in sys.modules, "imported"')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)},
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
