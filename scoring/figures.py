"""Figures of a leaderboard, drawn from `leaderboard.Leaderboard` as PNG bytes.

Kinds, per ranking group (`Figure.kind`):
  profile: performance profiles rho_s(tau) on [1, tau_max].
  time: time-to-target bars per workload and submission.
  curves (one per workload): training loss and the validation target metric
    of each submission's representative run, against submission time and
    against steps, the target dashed (`scoring.figures_curves`).
  sharpness (one per workload): the representative run's preconditioned
    sharpness (raw sharpness for methods without a preconditioner) over
    steps, with its stability threshold dashed, log-y; the raw sharpness of
    preconditioned methods dotted.
  aeos_ratio (one per workload): the threshold ratio of every submission on
    one log axis with a line at 1, lambda_1(H) in a panel below
    (`scoring.figures_curves`).
  solution: sharpness at solution against steps to solution, one point per
    run (Cohen et al. 2022, Fig. 11).

Every figure follows the same rules: the legend sits outside the axes (right
of them), a submission has one colour in every figure of a report
(`colours`), a lone point is drawn with a marker inside explicit limits, and
the caption says what the title does not.

`drawings` lists the figures with a function that draws each one as a
matplotlib Figure (what tests inspect); `render_figures` turns them into
PNGs. Matplotlib's Agg canvas is chosen when a figure is drawn; nothing is
configured at import and pyplot's global state is never touched.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import math
import re
from typing import Any, Callable, Sequence

from scoring import figures_curves as fc
from scoring import leaderboard as leaderboard_lib

_MARKERS = 'osD^vP*Xh<>'
# Matplotlib's tab10, written out so that `colours` needs no matplotlib.
_TAB10 = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
          '#e377c2', '#7f7f7f', '#bcbd22', '#17becf')
_GOLDEN = 0.618033988749895
_REPRESENTATIVE = ('Representative run of each submission (the one that sets '
                   'the median time; where none reached the target, the one '
                   'with the most probes).')


@dataclasses.dataclass(frozen=True)
class Figure:
  """One rendered figure.

  Attributes:
    name: file name (PNG) inside the report's figures/ directory.
    group: the ranking group it belongs to.
    kind: one of the kinds of the module docstring.
    title: what the figure shows, in a few words.
    png: the image.
    caption: what to know to read it that the title does not say.
  """

  name: str
  group: str
  kind: str
  title: str
  png: bytes
  caption: str = ''


@dataclasses.dataclass(frozen=True)
class Drawing:
  """A figure before rendering: `draw()` returns the matplotlib Figure, or
  None when the leaderboard has no data for it."""

  name: str
  group: str
  kind: str
  title: str
  caption: str
  draw: Callable[[], Any | None]


def slug(text: str) -> str:
  """A file-name-safe version of a name."""
  return re.sub(r'[^A-Za-z0-9._-]+', '-', text).strip('-') or 'x'


def colours(leaderboard: leaderboard_lib.Leaderboard) -> dict[str, str]:
  """One colour (hex) per submission name, the same in every figure.

  Names are coloured in sorted order: tab10 for the first ten, then hues
  spaced by the golden angle, so no two submissions share a colour.
  """
  names = sorted({r.submission for r in leaderboard.runs}
                 | {s for g in leaderboard.groups for s in g.submissions})
  return {name: _colour(i) for i, name in enumerate(names)}


def _colour(index: int) -> str:
  if index < len(_TAB10):
    return _TAB10[index]
  rgb = colorsys.hls_to_rgb((index * _GOLDEN) % 1.0, 0.45, 0.65)
  return '#' + ''.join(f'{round(255 * c):02x}' for c in rgb)


def new_figure(width: float = 8.0, height: float = 4.0) -> Any:
  """An empty Figure on an Agg canvas, laid out by constrained layout."""
  # Imported here: importing scoring must not import or configure matplotlib.
  from matplotlib import figure as mpl_figure
  from matplotlib.backends import backend_agg
  fig = mpl_figure.Figure(figsize=(width, height), layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  return fig


def new_axes(width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
  fig = new_figure(width, height)
  return fig, fig.add_subplot()


# Height of one row of a 'small' legend: the 8 pt text and its spacing.
_LEGEND_ROW_INCHES = 0.19


def legend_outside(fig: Any, title: str | None = None) -> Any | None:
  """One legend for the figure, below every axes, never over data.

  Entries come from the labelled artists of all axes; a label shared by
  several panels appears once. Below rather than beside: long labels
  (split submission names) then take the figure's width, not the plots'.
  """
  entries: dict[str, Any] = {}
  for ax in fig.axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      entries.setdefault(label, handle)
  if not entries:
    return None
  longest = max(len(label) for label in entries)
  columns = max(1, min(len(entries), 3, 120 // max(longest, 1)))
  # The figure grows by the legend's rows, so the axes keep their height
  # however many submissions there are (constrained layout would otherwise
  # squeeze them to nothing and lay the legend over the data).
  rows = -(-len(entries) // columns) + (title is not None)
  fig.set_figheight(fig.get_figheight() + _LEGEND_ROW_INCHES * rows)
  return fig.legend(list(entries.values()), list(entries), title=title,
                    loc='outside lower center', ncols=columns,
                    fontsize='small')


def legend_beside(ax: Any) -> None:
  """A legend to the right of one axes (constrained layout makes room)."""
  if ax.get_legend_handles_labels()[0]:
    ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              fontsize='small')


def to_png(fig: Any, dpi: int) -> bytes:
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  return buffer.getvalue()


def _profile(group: leaderboard_lib.RankingGroup, palette: dict[str, str],
             tau_max: float) -> Any:
  fig, ax = new_axes(8.0)
  for standing in group.standings:
    ax.plot(group.profile.taus, group.profile.rho[standing.submission],
            drawstyle='steps-post', color=palette[standing.submission],
            label=f'{standing.submission} ({standing.score:.3f})')
  ax.set(xlim=(1.0, tau_max), ylim=(-0.02, 1.05),
         xlabel='τ (time / fastest time)', ylabel='ρ(τ): fraction of workloads',
         title=f'Performance profiles — {group.name}')
  ax.grid(alpha=0.3)
  legend_outside(fig, 'submission (score)')
  return fig


def _finite_times(group: leaderboard_lib.RankingGroup) -> list[float]:
  return [c.time_s for c in group.cells if math.isfinite(c.time_s)
          and c.time_s > 0]


def _log_times(group: leaderboard_lib.RankingGroup) -> bool:
  # Log scale once the bars span more than a factor 20.
  finite = _finite_times(group)
  return bool(finite) and max(finite) / min(finite) > 20


def _times(group: leaderboard_lib.RankingGroup, palette: dict[str, str]
           ) -> Any:
  fig, ax = new_axes(max(8.0, 1.6 * len(group.workloads) + 3.6), 4.0)
  width = min(0.35, 0.8 / max(1, len(group.submissions)))
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
    ax.bar(xs, heights, width=width * 0.9, color=palette[submission])
    # A proxy square: a submission without bars still shows its colour.
    ax.plot([], [], linestyle='none', marker='s', markersize=9,
            color=palette[submission], label=submission)
    # Misses: an x just above the x axis (y in axes coordinates).
    ax.plot(missed, [0.03] * len(missed), linestyle='none', marker='x',
            markersize=9, markeredgewidth=2, color=palette[submission],
            transform=ax.get_xaxis_transform())
  ax.plot([], [], linestyle='none', marker='x', markeredgewidth=2,
          color='black', label='not reached')
  ax.set_xticks(range(len(group.workloads)),
                [w.name for w in group.workloads])
  ax.set_xlim(-0.6, len(group.workloads) - 0.4)
  if not any(math.isfinite(c.time_s) for c in group.cells):
    ax.set_ylim(0.0, 1.0)  # No time to scale by; never a negative axis.
    ax.text(0.5, 0.5, 'no submission reached the target',
            transform=ax.transAxes, ha='center', va='center')
  elif _log_times(group):
    ax.set_yscale('log')
    # Keeps the shortest bar visible.
    ax.set_ylim(bottom=min(_finite_times(group)) / 3)
  else:
    ax.set_ylim(bottom=0.0)
  ax.set(ylabel='time to target (s)', title=f'Time to target — {group.name}')
  ax.grid(axis='y', alpha=0.3)
  legend_outside(fig)
  return fig


def _sharpness(group: leaderboard_lib.RankingGroup, workload: str,
               palette: dict[str, str]) -> Any | None:
  cells = [group.cell(workload, s) for s in group.submissions]
  cells = [c for c in cells if c.series.steps]
  if not cells:
    return None
  fig, ax = new_axes(8.0)
  for cell in cells:
    series, colour = cell.series, palette[cell.submission]
    main = (series.preconditioned_sharpness if series.preconditioned
            else series.sharpness)
    label = 'λ1(P⁻¹H)' if series.preconditioned else 'λ1(H)'
    fc.plot_series(ax, series.steps, main, positive=True, color=colour,
                   linewidth=1.6, label=f'{cell.submission}: {label}')
    fc.plot_series(ax, series.steps, series.threshold, positive=True,
                   color=colour, linestyle='--', linewidth=1.2,
                   label=f'{cell.submission}: threshold')
    if series.preconditioned:
      fc.plot_series(ax, series.steps, series.sharpness, positive=True,
                     color=colour, linestyle=':', linewidth=1.0, alpha=0.7,
                     label=f'{cell.submission}: λ1(H)')
  ax.set_yscale('log')
  ax.set(xlabel='step', ylabel='sharpness',
         title=f'Sharpness vs threshold — {workload} ({group.name})')
  ax.grid(alpha=0.3, which='both')
  fc.settle_limits(ax)
  legend_outside(fig)
  return fig


def _solution_runs(leaderboard: leaderboard_lib.Leaderboard,
                   group: leaderboard_lib.RankingGroup
                   ) -> list[leaderboard_lib.RunEntry]:
  return [r for r in leaderboard.runs if r.device_kind in group.device_kinds
          and r.aeos.solution_step is not None
          and r.aeos.sharpness_at_solution is not None]


def _solution(leaderboard: leaderboard_lib.Leaderboard,
              group: leaderboard_lib.RankingGroup,
              palette: dict[str, str]) -> Any | None:
  runs = _solution_runs(leaderboard, group)
  if not runs:
    return None
  fig, ax = new_axes(8.0)
  markers = {w.name: _MARKERS[i % len(_MARKERS)]
             for i, w in enumerate(group.workloads)}
  for submission in group.submissions:
    for workload in group.workloads:
      own = [r for r in runs if (r.submission, r.workload)
             == (submission, workload.name)]
      if own:
        ax.plot([r.aeos.solution_step for r in own],
                [r.aeos.sharpness_at_solution for r in own],
                linestyle='none', color=palette[submission],
                marker=markers[workload.name],
                label=f'{submission} / {workload.name}')
  values = [r.aeos.sharpness_at_solution for r in runs]
  if min(values) > 0 and max(values) / min(values) > 10:
    ax.set_yscale('log')
  if len(runs) == 1:
    ax.text(0.02, 0.96, 'one run', transform=ax.transAxes, va='top')
  ax.set(xlabel='steps to solution (train loss below threshold)',
         ylabel='λ1(H) at solution',
         title=f'Sharpness at solution — {group.name}')
  ax.grid(alpha=0.3, which='both')
  fc.settle_limits(ax)
  legend_outside(fig)
  return fig


def _with_legend(draw: Callable[[Any], bool], width: float, height: float,
                 title: str) -> Any | None:
  fig = new_figure(width, height)
  if not draw(fig):
    return None
  fig.suptitle(title, fontsize='medium')
  legend_outside(fig)
  return fig


@dataclasses.dataclass(frozen=True)
class _Context:
  leaderboard: leaderboard_lib.Leaderboard
  colours: dict[str, str]
  runs: dict[str, leaderboard_lib.RunEntry]

  def traces(self, group: leaderboard_lib.RankingGroup, workload: str
             ) -> list[fc.Trace]:
    cells = [group.cell(workload, s) for s in group.submissions]
    return fc.traces(cells, self.runs, self.colours)


def _profile_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                      ) -> list[Drawing]:
  n, tau_max = len(group.workloads), ctx.leaderboard.tau_max
  caption = (f'ρ(τ): the fraction of the {n} workload(s) on which a '
             'submission is within τ × the fastest time; in brackets its '
             f'score, the area under ρ from 1 to {tau_max:g} divided by '
             f'{tau_max - 1:g}.')
  return [Drawing(f'{slug(group.name)}__profile.png', group.name, 'profile',
                  f'Performance profiles — {group.name}', caption,
                  lambda: _profile(group, ctx.colours, tau_max))]


def _time_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                   ) -> list[Drawing]:
  caption = ('Median over studies of each study\'s fastest trial, in seconds '
             'of submission time (evaluations excluded); × on the axis: not '
             'reached' + ('; log scale.' if _log_times(group) else '.'))
  return [Drawing(f'{slug(group.name)}__time.png', group.name, 'time',
                  f'Time to target — {group.name}', caption,
                  lambda: _times(group, ctx.colours))]


def _curves_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                     ) -> list[Drawing]:
  out = []
  for w in group.workloads:
    better = 'higher' if w.target_higher_is_better else 'lower'
    caption = (f'{_REPRESENTATIVE} Dashed: target {w.target_value:g} '
               f'{w.target_metric} ({better} is better). Training loss '
               'against steps includes the loss at each probe.')
    title = f'Training curves — {w.name} ({group.name})'
    draw = (lambda w=w, title=title: _with_legend(
        lambda fig: fc.draw_curves(fig, ctx.traces(group, w.name),
                                   target_metric=w.target_metric,
                                   target_value=w.target_value),
        11.0, 7.0, title))
    out.append(Drawing(f'{slug(group.name)}__curves_{slug(w.name)}.png',
                       group.name, 'curves', title, caption, draw))
  return out


def _sharpness_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                        ) -> list[Drawing]:
  caption = (f'{_REPRESENTATIVE} Solid: λ1(P⁻¹H), or λ1(H) without a '
             'preconditioner; dashed: its stability threshold; dotted: λ1(H) '
             'of preconditioned methods.')
  return [Drawing(
      f'{slug(group.name)}__sharpness_{slug(w.name)}.png', group.name,
      'sharpness', f'Sharpness against the stability threshold — {w.name}',
      caption, lambda w=w.name: _sharpness(group, w, ctx.colours))
          for w in group.workloads]


def _ratio_caption(traces: Sequence[fc.Trace]) -> str:
  unknown = [t.submission for t in traces
             if t.series.steps and not fc.ratio_points(t.series)[0]]
  unprobed = [t.submission for t in traces if not t.series.steps]
  parts = [f'{_REPRESENTATIVE} Above: λ1(P⁻¹H) / threshold, or λ1(H) / '
           'threshold without a preconditioner; dashed at 1: the edge of '
           'stability. Below: λ1(H).']
  if unknown:
    parts.append('Threshold unknown (below only): ' + ', '.join(unknown)
                 + '.')
  if unprobed:
    parts.append('No probes: ' + ', '.join(unprobed) + '.')
  return ' '.join(parts)


def _ratio_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                    ) -> list[Drawing]:
  out = []
  for w in group.workloads:
    title = f'Threshold ratio across submissions — {w.name} ({group.name})'
    draw = (lambda w=w.name, title=title: _with_legend(
        lambda fig: fc.draw_aeos_ratio(fig, ctx.traces(group, w)),
        9.0, 6.5, title))
    out.append(Drawing(
        f'{slug(group.name)}__aeos_ratio_{slug(w.name)}.png', group.name,
        'aeos_ratio', title, _ratio_caption(ctx.traces(group, w.name)),
        draw))
  return out


def _solution_drawings(ctx: _Context, group: leaderboard_lib.RankingGroup
                       ) -> list[Drawing]:
  runs = _solution_runs(ctx.leaderboard, group)
  thresholds = ', '.join(f'{w.name} {w.train_loss_threshold:g}'
                         for w in group.workloads)
  caption = (f'One point per run ({len(runs)}); the marker says the '
             'workload. Solution: the first step with training loss below '
             f'the workload\'s threshold ({thresholds}).')
  return [Drawing(f'{slug(group.name)}__solution.png', group.name, 'solution',
                  f'Sharpness at solution vs steps to solution — {group.name}',
                  caption, lambda: _solution(ctx.leaderboard, group,
                                             ctx.colours))]


# Kinds in the order the report shows them.
_KINDS = (_profile_drawings, _time_drawings, _curves_drawings,
          _sharpness_drawings, _ratio_drawings, _solution_drawings)


def drawings(leaderboard: leaderboard_lib.Leaderboard
             ) -> tuple[Drawing, ...]:
  """Every figure of the report, not yet drawn, in the report's order."""
  ctx = _Context(leaderboard=leaderboard, colours=colours(leaderboard),
                 runs={r.path: r for r in leaderboard.runs})
  return tuple(d for group in leaderboard.groups for kind in _KINDS
               for d in kind(ctx, group))


def render_figures(leaderboard: leaderboard_lib.Leaderboard, *, dpi: int = 100
                   ) -> tuple[Figure, ...]:
  """Every figure of the report; figures without data are left out.

  Args:
    leaderboard: the computed statistics.
    dpi: resolution of the PNGs.

  Returns:
    The figures, in the order the report shows them.
  """
  figures = []
  for drawing in drawings(leaderboard):
    fig = drawing.draw()
    if fig is not None:
      figures.append(Figure(name=drawing.name, group=drawing.group,
                            kind=drawing.kind, title=drawing.title,
                            png=to_png(fig, dpi), caption=drawing.caption))
  return tuple(figures)
