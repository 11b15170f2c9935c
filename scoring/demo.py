"""The main job's entry point: `python -m scoring.demo` (flags only).

  python -m scoring.demo --experiment_dir=runs/demo

`scoring.main_job` does the work; each flag's default is a field default of
`main_job.MainJob`.

Exit status: 0 when the demo ran; 1 when the run failed inside (one line
names the error and the run directory that records it); 2 for an expected
user error (a bad flag value, an unknown submission, missing data, a run
directory that holds another finished run): one line,
`scoring.demo: error: ...`. `--verbose` adds the traceback to both.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from harness import cli
from harness import compilation_cache
from harness import preflight
from harness import run_directory
from harness import runner
from scoring import main_job

PROGRAM = 'scoring.demo'

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
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', _DEFAULTS.overwrite,
    'Replace the finished run in the run directory whatever it is; without '
    'it only a previous run of this same demo (same flags) is replaced.')


parse_flags = cli.flags_parser(PROGRAM)


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  compilation_cache.enable_from_flags(PROGRAM)
  with cli.user_errors(PROGRAM, ValueError):  # Values the config refuses.
    config = main_job.MainJob(
        experiment_dir=_EXPERIMENT_DIR.value, submission=_SUBMISSION.value,
        learning_rate=_LEARNING_RATE.value, steps=_STEPS.value,
        curvature_every=_CURVATURE_EVERY.value, train_size=_TRAIN_SIZE.value,
        quiet=_QUIET.value, overwrite=_OVERWRITE.value).run_config()
  try:
    with cli.user_errors(PROGRAM, preflight.SetupError,
                         run_directory.RunDirectoryError):
      result = main_job.run_demo(config)
  except runner.RunFailed as e:
    return cli.run_failed(PROGRAM, e, e.line, e.exit_status)
  print(main_job.describe(result))
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
