"""The adaptive edge of stability, reproduced on real data (bundled FMNIST).

Full-batch Adam's preconditioned sharpness rises to 38/η and hovers there
while the raw sharpness keeps rising (Cohen et al. 2022, Fig. 1 and 8);
RMSProp's equilibrates at 2/η (Fig. 5). Same settings as the main job.
"""

from __future__ import annotations

import pytest

from harness import demo
from scoring import aeos


@pytest.fixture(scope='module')
def adam_run(tmp_path_factory):
  config = demo.demo_config(str(tmp_path_factory.mktemp('adam')), quiet=True)
  return demo.run_demo(config)


def test_adam_preconditioned_sharpness_equilibrates_at_38_over_eta(adam_run):
  stats, probes = adam_run.stats, adam_run.run.curvature
  assert probes[0]['stability_threshold'] == pytest.approx(38 / 2e-4)
  # It rises from well below the threshold ...
  assert probes[0]['threshold_ratio'] < 0.5
  assert stats.onset_step is not None and stats.onset_step < 300
  # ... and stays near it once there.
  assert 0.85 <= stats.ratio_median <= 1.15
  assert stats.fraction_in_band >= 0.6


def test_adam_raw_sharpness_keeps_rising_at_the_aeos(adam_run):
  stats = adam_run.stats
  assert stats.sharpness_growth > 1.2
  after_onset = [c['sharpness'] for c in adam_run.run.curvature
                 if c['step'] >= stats.onset_step]
  assert after_onset[-1] == max(after_onset) or (
      after_onset[-1] > 0.95 * max(after_onset))


def test_demo_writes_figure_and_summary(adam_run):
  assert adam_run.figure.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  text = demo.describe(adam_run)
  assert 'median' in text and str(adam_run.figure) in text


def test_rmsprop_equilibrates_at_2_over_eta(tmp_path):
  config = demo.demo_config(str(tmp_path), submission='rmsprop',
                            learning_rate=3e-5, steps=200, quiet=True)
  result = demo.run_demo(config)
  probes = result.run.curvature
  assert probes[0]['stability_threshold'] == pytest.approx(2 / 3e-5)
  stats = aeos.aeos_stats(probes, result.run.summary)
  assert stats.onset_step is not None
  assert 0.85 <= stats.ratio_median <= 1.15
