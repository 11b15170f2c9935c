"""The report's figures, inspected as matplotlib artists before PNG encoding.

Leaderboards come from hand-made run directories (`scoring_fixtures`).
"""

from __future__ import annotations

import dataclasses
import warnings
import types

import pytest
from matplotlib import colors as mpl_colors

from harness import records
from scoring import figures
from scoring import leaderboard
from tests import scoring_fixtures as fx

PNG = b'\x89PNG\r\n\x1a\n'
KINDS = {'profile', 'time', 'curves', 'sharpness', 'aeos_ratio', 'solution'}
SGD_LR = 0.1
# cpu: adam probes both workloads (preconditioned); sgd probes w2 only (no
# preconditioner, so its ratio is lambda_1(H) / threshold). The GPU group has
# sgd alone: colours by position in a group would give it adam's colour.
ADAM_RATIOS = {'w1': (0.3, 0.7, 1.1, 0.95), 'w2': (0.5, 1.02, 0.98)}
SGD_RATIOS = (0.2, 0.6, 1.4)


def _adam(ratios):
  return [fx.probe(10 * i, r, sharpness=3.0 + i) for i, r in
          enumerate(ratios)]


def _sgd(ratios):
  return [fx.probe(20 * i, r, learning_rate=SGD_LR, preconditioned=False)
          for i, r in enumerate(ratios)]


def _unknown_threshold(num: int) -> list[records.ProbeRecord]:
  return [dataclasses.replace(
      fx.probe(10 * i, 1.0, preconditioned=False), sharpness=4.0 + i,
      stability_threshold=None, threshold_ratio=None,
      threshold_unknown='no learning rate in the optimizer state')
          for i in range(num)]


@pytest.fixture(scope='module')
def board(tmp_path_factory):
  root = tmp_path_factory.mktemp('figures')
  for w, ratios in ADAM_RATIOS.items():
    fx.write_run(root, w, 'adam', time_to_target_s=10.0, steps_to_target=90,
                 curvature=_adam(ratios),
                 summary_overrides={'solution_step': 60,
                                    'sharpness_at_solution': 30.0})
  fx.write_run(root, 'w1', 'sgd', time_to_target_s=20.0, steps_to_target=150)
  fx.write_run(root, 'w2', 'sgd', status='budget_exhausted',
               curvature=_sgd(SGD_RATIOS),
               summary_overrides={'solution_step': 80,
                                  'sharpness_at_solution': 50.0})
  fx.write_run(root, 'w1', 'sgd', study=1, time_to_target_s=5.0,
               steps_to_target=50, device_kind=fx.GPU_KIND,
               curvature=_sgd(SGD_RATIOS))
  return leaderboard.compute_leaderboard([root])


@pytest.fixture(scope='module')
def drawn(board):
  """(drawing, matplotlib Figure) for every figure with data, laid out."""
  out = []
  for drawing in figures.drawings(board):
    fig = drawing.draw()
    if fig is not None:
      fig.canvas.draw()
      out.append((drawing, fig))
  return out


def _one(drawn, name):
  return next(fig for d, fig in drawn if d.name == name)


def _labelled(ax, prefix):
  return [line for line in ax.get_lines()
          if line.get_label().startswith(prefix)]


def test_every_kind_renders_a_png(board):
  rendered = figures.render_figures(board, dpi=40)
  assert {f.kind for f in rendered} == KINDS
  names = {f.name for f in rendered}
  for group in board.groups:
    prefix = figures.slug(group.name)
    for w in group.workloads:
      assert f'{prefix}__curves_{w.name}.png' in names
      assert f'{prefix}__aeos_ratio_{w.name}.png' in names
  for figure in rendered:
    assert figure.png.startswith(PNG), figure.name
    assert figure.caption and figure.caption != figure.title, figure.name


def test_a_submission_absent_from_the_probes_has_no_ratio_line(board, drawn):
  ratio_ax, raw_ax = _one(drawn, 'cpu__aeos_ratio_w1.png').axes
  assert [line.get_label() for line in _labelled(ratio_ax, 'adam')] == [
      'adam: λ1(P⁻¹H) / threshold']
  assert not _labelled(ratio_ax, 'sgd')
  # Neither a raw-sharpness line: the sgd run on w1 has no probe at all.
  sgd = figures.colours(board)['sgd']
  assert all(mpl_colors.to_hex(line.get_color()) != sgd
             for line in raw_ax.get_lines())


def test_the_ratio_plotted_is_the_probes_threshold_ratio(drawn):
  ratio_ax, _ = _one(drawn, 'cpu__aeos_ratio_w2.png').axes
  for name, expected in (('adam', _adam(ADAM_RATIOS['w2'])),
                         ('sgd', _sgd(SGD_RATIOS))):
    (line,) = _labelled(ratio_ax, name)
    assert list(line.get_xdata()) == [p.step for p in expected]
    assert list(line.get_ydata()) == pytest.approx(
        [p.threshold_ratio for p in expected], rel=1e-12)
  (edge,) = [line for line in ratio_ax.get_lines()
             if line.get_label().startswith('edge of stability')]
  assert list(edge.get_ydata()) == [1.0, 1.0]
  assert ratio_ax.get_yscale() == 'log'


def test_curves_show_the_target_and_the_probe_losses(board, drawn):
  loss_t, loss_s, metric_t, metric_s = _one(drawn, 'cpu__curves_w1.png').axes
  target = board.groups[0].workloads[0].target_value
  for ax in (metric_t, metric_s):
    (line,) = _labelled(ax, 'target')
    assert list(line.get_ydata()) == [target, target]
  adam = next(r for r in board.runs
              if (r.workload, r.submission) == ('w1', 'adam'))
  (steps_line,) = _labelled(loss_s, 'adam')
  assert tuple(steps_line.get_xdata()) == adam.curve.loss_steps
  assert set(adam.curve.loss_steps) > set(adam.curve.eval_steps)
  (time_line,) = _labelled(loss_t, 'adam')
  assert tuple(time_line.get_xdata()) == adam.curve.eval_times_s
  assert loss_t.get_yscale() == loss_s.get_yscale() == 'log'


def _submission_of(label: str) -> str:
  return label.split(' ')[0].rstrip(':')


def test_a_submission_has_one_colour_in_every_figure_and_group(board, drawn):
  expected = figures.colours(board)
  assert set(expected) == {'adam', 'sgd'}
  assert expected['adam'] != expected['sgd']
  seen: dict[tuple[str, str], set[str]] = {}
  for drawing, fig in drawn:
    for ax in fig.axes:
      artists = [*ax.get_lines(), *ax.containers]
      for artist in artists:
        name = _submission_of(artist.get_label())
        if name in expected:
          colour = (artist.get_color() if hasattr(artist, 'get_color')
                    else artist.patches[0].get_facecolor())
          seen.setdefault((name, drawing.group), set()).add(
              mpl_colors.to_hex(colour))
  assert seen[('sgd', fx.GPU_KIND)] == seen[('sgd', 'cpu')] == {
      expected['sgd']}
  assert seen[('adam', 'cpu')] == {expected['adam']}


def test_legends_lie_outside_every_axes(drawn):
  for drawing, fig in drawn:
    assert all(ax.get_legend() is None for ax in fig.axes), drawing.name
    assert len(fig.legends) == 1, drawing.name
    box = fig.legends[0].get_window_extent()
    for ax in fig.axes:
      assert not box.overlaps(ax.get_window_extent()), drawing.name


def test_a_lone_point_gets_a_marker_and_explicit_limits(tmp_path):
  fx.write_run(tmp_path, 'w1', 'adam', time_to_target_s=10.0,
               steps_to_target=90, curvature=[fx.probe(40, 0.9)],
               summary_overrides={'solution_step': 60,
                                  'sharpness_at_solution': 30.0})
  board = leaderboard.compute_leaderboard([tmp_path])
  by_name = {d.name: d for d in figures.drawings(board)}
  solution = by_name['cpu__solution.png'].draw().axes[0]
  assert 'one run' in [t.get_text() for t in solution.texts]
  (point,) = _labelled(solution, 'adam')
  assert point.get_marker() == 'o'
  low, high = solution.get_xlim()
  assert low < 60 < high and (low, high) == pytest.approx((30, 90))
  ratio_ax, _ = by_name['cpu__aeos_ratio_w1.png'].draw().axes
  (line,) = _labelled(ratio_ax, 'adam')
  assert line.get_marker() == 'o'
  assert ratio_ax.get_xlim() == pytest.approx((20, 60))


def test_a_submission_without_a_threshold_shows_only_below(tmp_path):
  fx.write_run(tmp_path, 'w1', 'adam', time_to_target_s=10.0,
               steps_to_target=90, curvature=_adam(ADAM_RATIOS['w1']))
  fx.write_run(tmp_path, 'w1', 'frozen', time_to_target_s=12.0,
               steps_to_target=90, curvature=_unknown_threshold(4))
  board = leaderboard.compute_leaderboard([tmp_path])
  drawing = next(d for d in figures.drawings(board)
                 if d.kind == 'aeos_ratio')
  fig = drawing.draw()
  ratio_ax, raw_ax = fig.axes
  assert not _labelled(ratio_ax, 'frozen')
  (below,) = _labelled(raw_ax, 'frozen')
  assert list(below.get_ydata()) == [4.0, 5.0, 6.0, 7.0]
  legend = [t.get_text() for t in fig.legends[0].get_texts()]
  assert [t for t in legend if 'unknown' in t] == [
      'frozen: threshold unknown']
  assert 'Threshold unknown (below only): frozen.' in drawing.caption


def test_colours_are_distinct_beyond_the_palette():
  names = [f's{i:02d}' for i in range(15)]
  runs = tuple(types.SimpleNamespace(submission=n) for n in reversed(names))
  board = leaderboard.Leaderboard(
      experiment_dirs=(), allow_mixed_hardware=False, tau_max=4.0, groups=(),
      runs=runs, skipped=())
  got = figures.colours(board)
  assert list(got) == names
  assert len(set(got.values())) == 15
  assert got['s00'] == mpl_colors.to_hex('tab:blue')
  assert all(mpl_colors.is_color_like(c) for c in got.values())


@pytest.mark.parametrize('entries', [3, 63])
def test_a_long_legend_grows_the_figure_not_over_the_axes(entries):
  """21 submissions give the sharpness figure 63 entries: the axes keep
  their height and the legend stays below them."""
  fig, ax = figures.new_axes(8.0, 4.0)
  for i in range(entries):
    ax.plot([0, 1], [i, i + 1], label=f'submission_{i}: threshold')
  legend = figures.legend_outside(fig)
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # "constrained_layout not applied".
    fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  axes_box = ax.get_window_extent(renderer)
  assert axes_box.height / fig.dpi > 2.5
  assert legend.get_window_extent(renderer).y1 <= ax.get_tightbbox(
      renderer).y0 + 1
