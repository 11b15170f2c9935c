"""The paper's claims, one reproducible figure each.

`FIGURES` maps a figure's number to its `PaperFigure`: how to measure it
(training runs as a suite, or an exact computation), the criterion its
claim is judged by (in the figure module's docstring, with its tolerance),
and how to draw it. `reproduce` measures one, writes `fig<N>.json` and
`fig<N>.png`, and returns the `Outcome`. The entry point is
`python -m scoring.reproduce`.

References:
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022).
"""

from __future__ import annotations

import pathlib

from scoring.paper_figures import figure_1
from scoring.paper_figures import figure_2
from scoring.paper_figures import figure_16
from scoring.paper_figures import figure_5
from scoring.paper_figures import figure_6
from scoring.paper_figures import figure_7
from scoring.paper_figures import figures_10_and_11
from scoring.paper_figures import figures_3_and_8
from scoring.paper_figures._claim import Outcome
from scoring.paper_figures._claim import PaperFigure
from scoring.paper_figures._claim import ScaleError
from scoring.paper_figures._claim import read_outcome
from scoring.paper_figures._claim import write_outcome

FIGURES: dict[str, PaperFigure] = {
    figure.figure: figure for figure in (
        figure_1.FIGURE, figure_2.FIGURE, figures_3_and_8.FIGURE_3,
        figure_5.FIGURE, figure_6.FIGURE, figure_7.FIGURE,
        figures_3_and_8.FIGURE_8, figures_10_and_11.FIGURE_10,
        figures_10_and_11.FIGURE_11, figure_16.FIGURE)
}


class UnknownFigure(ValueError):
  """A figure with no reproduction here; the message lists those there are."""


def _number(figure: str) -> tuple[int, str]:
  """Figures in the paper's order: 2 before 10."""
  digits = ''.join(c for c in figure if c.isdigit())
  return (int(digits) if digits else 0, figure)


def names() -> list[str]:
  """The reproduced figures, in the paper's order."""
  return sorted(FIGURES, key=_number)


def get(figure: str) -> PaperFigure:
  if figure not in FIGURES:
    raise UnknownFigure(f'no reproduction of Fig. {figure}; there are: '
                        f'{", ".join(names())}')
  return FIGURES[figure]


def reproduce(figure: str, out_dir: str | pathlib.Path, *,
              scale: str = 'default',
              experiment_dir: str | pathlib.Path | None = None,
              workload: str | None = None) -> Outcome:
  """Measures one figure at `scale` and writes its table and PNG.

  Args:
    figure: the paper's figure number, a key of `FIGURES`.
    out_dir: where `fig<N>.json` and `fig<N>.png` go.
    scale: one of the figure's scales ('tiny' for tests, 'default' for
      this machine).
    experiment_dir: where its training runs go, under a folder per scale
      and one per sweep; `<out_dir>/runs` by default. A rerun with the
      same settings skips finished runs, and figures that train the same
      runs share them.
    workload: the workload its runs train instead of the scale's own.

  Raises:
    UnknownFigure, ScaleError: one line naming what there is.
  """
  return reproduce_figure(get(figure), out_dir, scale=scale,
                          experiment_dir=experiment_dir, workload=workload)


def reproduce_figure(paper_figure: PaperFigure, out_dir: str | pathlib.Path,
                     *, scale: str = 'default',
                     experiment_dir: str | pathlib.Path | None = None,
                     workload: str | None = None) -> Outcome:
  """`reproduce` for a `PaperFigure` object (one not in `FIGURES`, say)."""
  sizes = paper_figure.sizes(scale, workload)
  out_dir = pathlib.Path(out_dir)
  runs = pathlib.Path(experiment_dir) if experiment_dir else out_dir / 'runs'
  # Runs of another workload are their own suite, beside the scale's.
  folder = scale if workload is None else f'{scale}_{workload}'
  outcome, measured = paper_figure.measure(sizes, runs / folder)
  write_outcome(outcome, paper_figure.draw(measured), out_dir)
  return outcome


__all__ = ['FIGURES', 'Outcome', 'PaperFigure', 'ScaleError',
           'UnknownFigure', 'get', 'names', 'read_outcome', 'reproduce',
           'reproduce_figure', 'write_outcome']
