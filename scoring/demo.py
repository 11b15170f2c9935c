"""The main job's entry point: `python -m scoring.demo` (flags only).

  python -m scoring.demo --experiment_dir=runs/demo

`scoring.main_job` does the work; each flag's default is a field default of
`main_job.MainJob`.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from scoring import main_job

_DEFAULTS = main_job.MainJob()

_EXPERIMENT_DIR = flags.DEFINE_string(
    'experiment_dir', _DEFAULTS.experiment_dir,
    'Root directory of the run records.')
_SUBMISSION = flags.DEFINE_string('submission', _DEFAULTS.submission,
                                  'Baseline name or submission path.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _DEFAULTS.learning_rate,
                                    'Step size η.')
_STEPS = flags.DEFINE_integer('steps', _DEFAULTS.steps, 'Training steps.')
_CURVATURE_EVERY = flags.DEFINE_integer(
    'curvature_every', _DEFAULTS.curvature_every,
    'Probe every this many steps.')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', _DEFAULTS.train_size,
                                   'Full-batch size.')
_QUIET = flags.DEFINE_bool('quiet', _DEFAULTS.quiet, 'No progress lines.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  job = main_job.MainJob(
      experiment_dir=_EXPERIMENT_DIR.value, submission=_SUBMISSION.value,
      learning_rate=_LEARNING_RATE.value, steps=_STEPS.value,
      curvature_every=_CURVATURE_EVERY.value, train_size=_TRAIN_SIZE.value,
      quiet=_QUIET.value)
  print(main_job.describe(main_job.run_demo(job.run_config())))


if __name__ == '__main__':
  sys.exit(app.run(main))
