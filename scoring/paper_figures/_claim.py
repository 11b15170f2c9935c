"""What every reproduced figure has: a claim, a criterion and a verdict.

A figure module measures (training runs written as any run is, or an
exact computation), then judges its claim against a criterion written in
its docstring, with its tolerance and why. `Outcome` is what it found, and
`write_outcome` puts it in the output directory as `<name>.json` (the
measured table, the verdict) beside `<name>.png` (the figure).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Mapping, Sequence

from scoring import aeos
from scoring import figures
import workloads


class ScaleError(ValueError):
  """A scale the figure does not offer, or a workload it cannot train;
  the message says what it offers."""


@dataclasses.dataclass(frozen=True)
class Outcome:
  """One figure's measurement and verdict.

  Attributes:
    figure: the paper's figure, e.g. '1'.
    claim: the claim, one sentence.
    criterion: what `holds` tests, with its tolerance.
    holds: whether the measurement meets the criterion.
    verdict: one line with the numbers behind `holds`.
    rows: the measured statistics, one mapping per run or setting.
    settings: the sizes measured at (the scale's fields).
  """

  figure: str
  claim: str
  criterion: str
  holds: bool
  verdict: str
  rows: tuple[Mapping[str, Any], ...]
  settings: Mapping[str, Any]

  def line(self) -> str:
    return (f'Fig. {self.figure}: {"holds" if self.holds else "DOES NOT HOLD"}'
            f' — {self.verdict}')


@dataclasses.dataclass(frozen=True)
class PaperFigure:
  """A reproducible figure: how to measure it and how to draw it.

  Attributes:
    figure: the paper's figure number (or 'D' style label).
    claim: the claim it checks.
    scales: scale name -> the sizes at that scale (a frozen dataclass).
    measure: (sizes, experiment_dir) -> (Outcome, what `draw` needs).
    draw: (what `measure` returned) -> a matplotlib Figure.
  """

  figure: str
  claim: str
  scales: Mapping[str, Any]
  measure: Callable[[Any, pathlib.Path], tuple[Outcome, Any]]
  draw: Callable[[Any], Any]

  def sizes(self, scale: str, workload: str | None = None) -> Any:
    """The sizes at `scale`, training `workload` instead of the scale's
    own when it is given."""
    if scale not in self.scales:
      raise ScaleError(f'Fig. {self.figure} has no scale {scale!r}; it has '
                       f'{", ".join(sorted(self.scales))}')
    sizes = self.scales[scale]
    if workload is None:
      return sizes
    if not any(f.name == 'workload' for f in dataclasses.fields(sizes)):
      raise ScaleError(f'Fig. {self.figure} trains no network, so it takes '
                       'no workload')
    if workload not in workloads.names():
      raise ScaleError(f'unknown workload {workload!r}; known workloads: '
                       f'{", ".join(workloads.names())}')
    return dataclasses.replace(sizes, workload=workload)


def finish(fig: Any, title: str) -> Any:
  """Every figure's title and one legend below its axes; returns `fig`."""
  fig.suptitle(title, fontsize='medium')
  figures.legend_outside(fig)
  return fig


def write_outcome(outcome: Outcome, figure: Any, out_dir: pathlib.Path,
                  *, dpi: int = 110) -> tuple[pathlib.Path, pathlib.Path]:
  """`fig<N>.json` and `fig<N>.png` in `out_dir`; returns both paths."""
  out_dir.mkdir(parents=True, exist_ok=True)
  stem = f'fig{outcome.figure}'
  table = out_dir / f'{stem}.json'
  table.write_text(json.dumps(dataclasses.asdict(outcome), indent=2,
                              default=_jsonable) + '\n')
  image = out_dir / f'{stem}.png'
  image.write_bytes(figures.to_png(figure, dpi))
  return table, image


def _jsonable(value: Any) -> Any:
  if isinstance(value, (tuple, frozenset, set)):
    return list(value)
  raise TypeError(f'not JSON: {type(value).__name__}')


def read_outcome(path: pathlib.Path) -> Outcome:
  """An `Outcome` from the JSON `write_outcome` wrote."""
  data = json.loads(path.read_text())
  return Outcome(**{**data, 'rows': tuple(data['rows'])})


def at_the_edge(stats: aeos.AeosStats) -> bool:
  """Whether a run reached the onset and its median threshold ratio after
  it lies within 1 ± `aeos.BAND`: the criterion every figure of a run at
  the edge of stability shares."""
  return (stats.ratio_median is not None and
          abs(stats.ratio_median - 1) <= aeos.BAND)


def span(values: Sequence[float], fmt: str = '.3g') -> str:
  """'a–b' over the values, or 'none'."""
  if not values:
    return 'none'
  return f'{format(min(values), fmt)}–{format(max(values), fmt)}'
