"""AEoS statistics on hand-made curvature records with known answers."""

import dataclasses
import math

import pytest

from harness import records
from scoring import aeos
from tests import scoring_fixtures as fx

STEPS = [0, 10, 20, 30, 40, 50, 60]
RATIOS = [0.2, 0.5, 0.95, 1.0, 1.1, 0.8, 1.2]
SHARPNESS = [2.0, 5.0, 10.0, 14.0, 18.0, 21.0, 25.0]


def test_onset_equilibrium_and_growth_by_hand():
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS))
  assert stats.num_probes == 7
  assert stats.preconditioned
  assert stats.onset_step == 20  # First ratio >= 0.9.
  # From the onset on: 0.95, 1.0, 1.1, 0.8, 1.2 -> sorted 0.8 0.95 1 1.1 1.2.
  assert stats.ratio_median == pytest.approx(1.0)
  assert stats.ratio_q25 == pytest.approx(0.95)
  assert stats.ratio_q75 == pytest.approx(1.1)
  assert stats.ratio_iqr == pytest.approx(0.15)
  assert stats.fraction_in_band == pytest.approx(3 / 5)  # 0.95, 1.0, 1.1.
  assert stats.sharpness_at_onset == 10.0
  assert stats.sharpness_final == 25.0
  assert stats.sharpness_growth == pytest.approx(2.5)


def test_interpolated_quartiles():
  # After onset at step 10: 0.9, 1.0, 1.3, 1.0 -> sorted 0.9 1.0 1.0 1.3;
  # linear percentiles: q25 at position .75 -> 0.975, q75 at 2.25 -> 1.075.
  stats = aeos.aeos_stats(fx.adam_like(
      [0, 10, 20, 30, 40], [0.1, 0.9, 1.0, 1.3, 1.0], [1, 2, 3, 4, 5]))
  assert stats.onset_step == 10
  assert stats.ratio_median == pytest.approx(1.0)
  assert stats.ratio_q25 == pytest.approx(0.975)
  assert stats.ratio_q75 == pytest.approx(1.075)
  assert stats.fraction_in_band == pytest.approx(3 / 4)


def test_frozen_like_sharpness_stops_rising():
  stats = aeos.aeos_stats(fx.adam_like(
      STEPS, RATIOS, [2.0, 5.0, 10.0, 10.2, 10.1, 10.3, 10.4]))
  assert stats.sharpness_growth == pytest.approx(1.04)


def test_no_probes_gives_null_statistics():
  stats = aeos.aeos_stats([], None)
  # Without a summary the run has not finished: that is why it has no
  # sharpness at solution.
  assert stats == aeos.AeosStats(solution_missing='run not finished')
  assert stats.onset_step is None and stats.ratio_median is None


def test_never_reaching_onset():
  stats = aeos.aeos_stats(fx.adam_like([0, 10], [0.3, 0.89], [1.0, 2.0]))
  assert stats.num_probes == 2
  assert stats.onset_step is None
  assert stats.ratio_median is None and stats.sharpness_growth is None
  assert stats.fraction_in_band is None


def test_probes_sorted_deduplicated_and_non_finite_ignored():
  curvature = fx.adam_like(STEPS, RATIOS, SHARPNESS)
  curvature.append(fx.probe(60, 5.0, reason='final'))  # Same step: ignored.
  curvature.append(fx.probe(70, math.nan, reason='final'))
  stats = aeos.aeos_stats(list(reversed(curvature)))
  # Reversed input: the 'final' probe at step 60 now comes first and wins.
  assert stats.num_probes == 7
  assert stats.onset_step == 20
  assert stats.ratio_median == pytest.approx(1.0)  # 0.95 1 1.1 0.8 5.0
  assert stats.sharpness_final == 10.0  # fx.probe's default sharpness.


def test_custom_onset_and_band():
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS),
                          onset_ratio=1.05, band=0.12)
  assert stats.onset_step == 40
  assert stats.ratio_median == pytest.approx(1.1)  # 1.1, 0.8, 1.2
  assert stats.fraction_in_band == pytest.approx(1 / 3)  # Only 1.1.


def test_method_without_preconditioner():
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS,
                                       preconditioned=False))
  assert not stats.preconditioned
  assert stats.onset_step == 20
  series = aeos.curvature_series(fx.adam_like(STEPS, RATIOS, SHARPNESS,
                                              preconditioned=False))
  assert not series.preconditioned
  assert series.preconditioned_sharpness == (None,) * 7


def test_solution_from_summary():
  summary = fx.summary(solution_step=30, sharpness_at_solution=99.0,
                       preconditioned_sharpness_at_solution=3800.0)
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS), summary)
  assert stats.solution_step == 30
  assert stats.sharpness_at_solution == 99.0
  assert stats.preconditioned_sharpness_at_solution == 3800.0


def test_solution_falls_back_to_probe_at_solution_step():
  summary = fx.summary(solution_step=30, sharpness_at_solution=None)
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS), summary)
  assert stats.sharpness_at_solution == 14.0
  # Probe at 30: ratio 1.0 times threshold 38 / 0.01.
  assert stats.preconditioned_sharpness_at_solution == pytest.approx(3800.0)


def test_solution_step_without_probe_or_value():
  stats = aeos.aeos_stats(fx.adam_like(STEPS, RATIOS, SHARPNESS),
                          fx.summary(solution_step=35))
  assert stats.solution_step == 35
  assert stats.sharpness_at_solution is None


def test_series_keeps_finite_values_by_step():
  curvature = fx.adam_like([20, 0, 10], [1.0, math.inf, 0.5], [3, 1, 2])
  series = aeos.curvature_series(curvature)
  assert series.steps == (0, 10, 20)
  assert series.sharpness == (1.0, 2.0, 3.0)
  assert series.preconditioned_sharpness[0] is None  # inf * threshold.
  assert series.threshold == (pytest.approx(3800.0),) * 3


def test_statistics_from_records_on_disk(tmp_path):
  curvature = fx.adam_like(STEPS, RATIOS, SHARPNESS)
  # Written as 'nan', read back NaN.
  curvature[-1] = dataclasses.replace(curvature[-1], sharpness=math.nan)
  path = fx.write_run(tmp_path, 'w', 's', time_to_target_s=5.0,
                      steps_to_target=60, curvature=curvature,
                      summary_overrides={'solution_step': 40})
  run = records.read_run(path)
  stats = aeos.aeos_stats(run.curvature, run.summary)
  assert stats.onset_step == 20
  assert stats.sharpness_final is None and stats.sharpness_growth is None
  assert stats.sharpness_at_solution == 18.0
