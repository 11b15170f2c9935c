r"""Runs every trial of a submission's studies on one workload:
`python -m harness.study`.

The runner's flags name the run (`--workload`, `--submission`, AlgoPerf's
`--submission_path` and `--tuning_search_space`); AlgoPerf's
`--tuning_ruleset` and `--num_tuning_trials`, and `--num_studies`, say how
many trials. Example::

  python -m harness.study --workload=fmnist_fc --submission=adam \
      --num_studies=3 --num_tuning_trials=5 --experiment_dir=runs/study

A study is a suite of one submission and one workload: the same job list,
launchers (`--list_jobs`, `--job_index`, `--launcher`), resume and
one-line errors as `harness.suite`, whose docstring says more.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from harness import cli
from harness import compilation_cache
from harness import suite

PROGRAM = 'harness.study'


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  compilation_cache.enable_from_flags(PROGRAM)
  submission = flags.FLAGS.submission
  with cli.user_errors(PROGRAM, ValueError):
    spec = suite.spec_from_flags([submission] if submission else None,
                                 flags.FLAGS.workload,
                                 other_names=('submissions', 'workloads'))
  return suite.run_from_flags(PROGRAM, spec)


parse_flags = cli.flags_parser(PROGRAM)

if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
