r"""Reproduces one of the paper's figures: `python -m scoring.reproduce`.

  python -m scoring.reproduce --figure=1 --out=results/fig1 [--check] \
      [--scale=tiny|default|paper] [--workload=NAME] [--runs_dir=DIR]

Measures the figure (`scoring.paper_figures`), writes `fig<N>.json` (the
measured table and the verdict) and `fig<N>.png` into --out, and prints the
verdict with its numbers. The training runs of a figure are a suite: a
rerun of the same command skips the runs that finished.

Exit status: 0 when it ran (and, with --check, the claim held); 1 when
--check was given and the claim did not hold; 2 for bad input (an unknown
figure or scale), one line.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from harness import cli
from harness import compilation_cache
from scoring import paper_figures

PROGRAM = 'scoring.reproduce'

_FIGURE = flags.DEFINE_string(
    'figure', None, 'The paper\'s figure: one of '
    f'{", ".join(paper_figures.names())}.')
_OUT = flags.DEFINE_string('out', 'results', 'Where fig<N>.json and '
                           'fig<N>.png go.')
_SCALE = flags.DEFINE_string(
    'scale', 'default', 'Sizes: tiny (seconds, as the tests run it), '
    'default (minutes on two CPU cores, on the bundled data) or paper (the '
    'paper\'s workloads and sizes: their data and accelerators).')
_WORKLOAD = flags.DEFINE_string(
    'workload', None, 'Train this workload (python -m '
    'harness.list_workloads) at the scale\'s sizes instead of the scale\'s '
    'own.')
_RUNS_DIR = flags.DEFINE_string(
    'runs_dir', None, 'Where the training runs go, an experiment '
    'directory as any suite\'s (default <out>/runs).')
_CHECK = flags.DEFINE_bool('check', False, 'Exit 1 unless the claim held.')

parse_flags = cli.flags_parser(PROGRAM)


def main(argv):
  cli.no_arguments(PROGRAM, argv)
  compilation_cache.enable_from_flags(PROGRAM)
  with cli.user_errors(PROGRAM, paper_figures.UnknownFigure,
                       paper_figures.ScaleError):
    if _FIGURE.value is None:
      raise cli.UserError('say which figure: --figure=' +
                          '|'.join(paper_figures.names()))
    outcome = paper_figures.reproduce(
        _FIGURE.value, _OUT.value, scale=_SCALE.value,
        experiment_dir=_RUNS_DIR.value, workload=_WORKLOAD.value)
  print(outcome.line())
  print(f'wrote {_OUT.value}/fig{outcome.figure}.json and '
        f'{_OUT.value}/fig{outcome.figure}.png')
  return 1 if _CHECK.value and not outcome.holds else 0


if __name__ == '__main__':
  sys.exit(app.run(main, flags_parser=parse_flags))
