"""Figures of a leaderboard, drawn from `leaderboard.Leaderboard` as PNG bytes.

Per ranking group:
  profile: performance profiles rho_s(tau) on [1, tau_max].
  time: time-to-target bars per workload and submission.
  sharpness_<workload>: the representative run's preconditioned sharpness
    (raw sharpness for methods without a preconditioner) over steps, with its
    stability threshold dashed, log-y; the raw sharpness of preconditioned
    methods dotted.
  solution: sharpness at solution against steps to solution, one point per
    run (Cohen et al. 2022, Fig. 11).

Matplotlib's Agg canvas is chosen inside `render_figures`; nothing is
configured at import and pyplot's global state is never touched.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from typing import Any, Callable, Sequence

from scoring import leaderboard as leaderboard_lib

_MARKERS = 'osD^vP*Xh<>'


@dataclasses.dataclass(frozen=True)
class Figure:
  """One rendered figure.

  Attributes:
    name: file name (PNG) inside the report's figures/ directory.
    group: the ranking group it belongs to.
    kind: 'profile', 'time', 'sharpness' or 'solution'.
    title: caption.
    png: the image.
  """

  name: str
  group: str
  kind: str
  title: str
  png: bytes


def slug(text: str) -> str:
  """A file-name-safe version of a name."""
  return re.sub(r'[^A-Za-z0-9._-]+', '-', text).strip('-') or 'x'


def new_axes(width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
  # Imported here: importing scoring must not import or configure matplotlib.
  from matplotlib import figure as mpl_figure
  from matplotlib.backends import backend_agg
  fig = mpl_figure.Figure(figsize=(width, height), layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  return fig, fig.add_subplot()


def to_png(fig: Any, dpi: int) -> bytes:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  return buffer.getvalue()


def _colours(submissions: Sequence[str]) -> dict[str, Any]:
  from matplotlib import colormaps
  cmap = colormaps['tab10']
  return {s: cmap(i % 10) for i, s in enumerate(sorted(submissions))}


def _profile(group: leaderboard_lib.RankingGroup, colours: dict[str, Any],
             tau_max: float) -> Any:
  fig, ax = new_axes()
  for standing in group.standings:
    ax.plot(group.profile.taus, group.profile.rho[standing.submission],
            drawstyle='steps-post', color=colours[standing.submission],
            label=f'{standing.submission} ({standing.score:.3f})')
  ax.set(xlim=(1.0, tau_max), ylim=(-0.02, 1.05),
         xlabel='τ (time / fastest time)', ylabel='ρ(τ): fraction of workloads',
         title=f'Performance profiles — {group.name}')
  ax.grid(alpha=0.3)
  ax.legend(loc='lower right', fontsize='small', title='submission (score)')
  return fig


def _times(group: leaderboard_lib.RankingGroup, colours: dict[str, Any]) -> Any:
  fig, ax = new_axes(max(6.4, 1.6 * len(group.workloads) + 2), 4.0)
  width = min(0.35, 0.8 / max(1, len(group.submissions)))
  finite = [c.time_s for c in group.cells if math.isfinite(c.time_s)
            and c.time_s > 0]
  log = bool(finite) and max(finite) / min(finite) > 20
  for j, submission in enumerate(group.submissions):
    xs, heights, missed = [], [], []
    for i, workload in enumerate(group.workloads):
      x = i + width * (j + 0.5 - len(group.submissions) / 2)
      t = group.cell(workload.name, submission).time_s
      if math.isfinite(t):
        xs.append(x)
        heights.append(t)
      else:
        missed.append(x)
    ax.bar(xs, heights, width=width * 0.9, color=colours[submission],
           label=submission)
    # Misses: an x just above the x axis (y in axes coordinates).
    ax.plot(missed, [0.03] * len(missed), linestyle='none', marker='x',
            markersize=9, markeredgewidth=2, color=colours[submission],
            transform=ax.get_xaxis_transform())
  ax.set_xticks(range(len(group.workloads)),
                [w.name for w in group.workloads])
  ax.set_xlim(-0.6, len(group.workloads) - 0.4)
  if log:
    ax.set_yscale('log')
    ax.set_ylim(bottom=min(finite) / 3)  # Keeps the shortest bar visible.
  ax.set(ylabel='time to target (s)',
         title=f'Time to target — {group.name} (× = not reached)')
  ax.grid(axis='y', alpha=0.3)
  ax.legend(fontsize='small')
  return fig


def _positive(steps: Sequence[int], values: Sequence[float | None]
              ) -> tuple[list[int], list[float]]:
  pairs = [(s, v) for s, v in zip(steps, values) if v is not None and v > 0]
  return [p[0] for p in pairs], [p[1] for p in pairs]


def _sharpness(group: leaderboard_lib.RankingGroup, workload: str,
               colours: dict[str, Any]) -> Any | None:
  cells = [group.cell(workload, s) for s in group.submissions]
  cells = [c for c in cells if c.series.steps]
  if not cells:
    return None
  fig, ax = new_axes()
  for cell in cells:
    series, colour = cell.series, colours[cell.submission]
    main = (series.preconditioned_sharpness if series.preconditioned
            else series.sharpness)
    label = 'λ1(P⁻¹H)' if series.preconditioned else 'λ1(H)'
    ax.plot(*_positive(series.steps, main), color=colour, linewidth=1.6,
            label=f'{cell.submission}: {label}')
    ax.plot(*_positive(series.steps, series.threshold), color=colour,
            linestyle='--', linewidth=1.2,
            label=f'{cell.submission}: threshold')
    if series.preconditioned:
      ax.plot(*_positive(series.steps, series.sharpness), color=colour,
              linestyle=':', linewidth=1.0, alpha=0.7,
              label=f'{cell.submission}: λ1(H)')
  ax.set_yscale('log')
  ax.set(xlabel='step', ylabel='sharpness',
         title=f'Sharpness vs threshold — {workload} ({group.name})')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize='x-small')
  return fig


def _solution(leaderboard: leaderboard_lib.Leaderboard,
              group: leaderboard_lib.RankingGroup,
              colours: dict[str, Any]) -> Any | None:
  runs = [r for r in leaderboard.runs if r.device_kind in group.device_kinds
          and r.aeos.solution_step is not None
          and r.aeos.sharpness_at_solution is not None]
  if not runs:
    return None
  fig, ax = new_axes()
  markers = {w.name: _MARKERS[i % len(_MARKERS)]
             for i, w in enumerate(group.workloads)}
  for submission in group.submissions:
    for workload in group.workloads:
      own = [r for r in runs if (r.submission, r.workload)
             == (submission, workload.name)]
      if own:
        ax.scatter([r.aeos.solution_step for r in own],
                   [r.aeos.sharpness_at_solution for r in own],
                   color=colours[submission], marker=markers[workload.name],
                   label=f'{submission} / {workload.name}')
  values = [r.aeos.sharpness_at_solution for r in runs]
  if min(values) > 0 and max(values) / min(values) > 10:
    ax.set_yscale('log')
  ax.set(xlabel='steps to solution (train loss below threshold)',
         ylabel='λ1(H) at solution',
         title=f'Sharpness at solution — {group.name}')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize='x-small')
  return fig


def _group_figures(leaderboard: leaderboard_lib.Leaderboard,
                   group: leaderboard_lib.RankingGroup, colours: dict[str, Any]
                   ) -> list[tuple[str, str, str, Callable[[], Any]]]:
  """(kind, name, title, draw) per figure of a group."""
  prefix = slug(group.name)
  items = [
      ('profile', f'{prefix}__profile.png',
       f'Performance profiles — {group.name}',
       lambda: _profile(group, colours, leaderboard.tau_max)),
      ('time', f'{prefix}__time.png', f'Time to target — {group.name}',
       lambda: _times(group, colours)),
  ]
  for workload in group.workloads:
    items.append((
        'sharpness', f'{prefix}__sharpness_{slug(workload.name)}.png',
        f'Sharpness against the stability threshold — {workload.name}',
        lambda w=workload.name: _sharpness(group, w, colours)))
  items.append(('solution', f'{prefix}__solution.png',
                f'Sharpness at solution vs steps to solution — {group.name}',
                lambda: _solution(leaderboard, group, colours)))
  return items


def render_figures(leaderboard: leaderboard_lib.Leaderboard, *, dpi: int = 100
                   ) -> tuple[Figure, ...]:
  """Every figure of the report; figures without data are left out.

  Args:
    leaderboard: the computed statistics.
    dpi: resolution of the PNGs.

  Returns:
    The figures, in the order the report shows them.
  """
  colours = _colours({s for g in leaderboard.groups for s in g.submissions})
  figures = []
  for group in leaderboard.groups:
    for kind, name, title, draw in _group_figures(leaderboard, group,
                                                  colours):
      fig = draw()
      if fig is not None:
        figures.append(Figure(name=name, group=group.name, kind=kind,
                              title=title, png=to_png(fig, dpi)))
  return tuple(figures)
