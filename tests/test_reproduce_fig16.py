"""Fig. 16 (App. D) at a tiny size: Adam and the same run with P frozen.

On the bundled data the corner case does not appear (`figure_16`'s
docstring gives what was seen): the verdict is asserted to be the criterion
recomputed from the records, the two runs to be one up to the freeze, and
what was seen instead, frozen Adam's ratio below Adam's after it. The
criterion itself is shown to pass on a pair shaped like the paper's and to
fail on the ways a pair can miss it.
"""

from __future__ import annotations

import pytest

from harness import records
from scoring import aeos
from scoring import paper_figures
from scoring.paper_figures import figure_16
from workloads import registry

SIZES = figure_16.SCALES['tiny']


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
  out = tmp_path_factory.mktemp('fig16')
  outcome = paper_figures.reproduce_figure(figure_16.FIGURE, out,
                                           scale='tiny')
  adam, frozen = outcome.rows
  return outcome, records.read_run(adam['run']), records.read_run(
      frozen['run']), out


def _ratios(run: records.RunRecord) -> dict[int, float]:
  return {p.step: p.threshold_ratio for p in aeos.usable_probes(
      run.curvature)}


def test_the_verdict_is_the_criterion_on_the_records(reproduced):
  outcome, adam_run, frozen_run, out = reproduced
  adam = aeos.aeos_stats(adam_run.curvature, adam_run.summary)
  frozen = aeos.aeos_stats(frozen_run.curvature, frozen_run.summary)
  latest = SIZES.freeze_step + (SIZES.steps - SIZES.freeze_step) // 2
  expected = (adam.onset_step is None and frozen.onset_step is not None and
              SIZES.freeze_step < frozen.onset_step <= latest and
              abs(frozen.ratio_median - 1) <= aeos.BAND)
  assert outcome.holds == expected
  assert outcome.rows[0]['ratio_peak'] == adam.ratio_peak
  assert adam.ratio_peak < aeos.ONSET_RATIO  # Adam stays below, as claimed.
  assert (out / 'fig16.png').read_bytes()[:4] == b'\x89PNG'


def test_one_run_until_the_freeze_then_frozen_adam_falls_behind(reproduced):
  """Same η, seed and data: the probes agree to the bit up to step K.
  After it frozen Adam's ratio stays below Adam's: here Adam's P shrinks
  as the gradients fade, raising λ1(P⁻¹H), and a frozen P cannot."""
  _, adam_run, frozen_run, _ = reproduced
  adam, frozen = _ratios(adam_run), _ratios(frozen_run)
  shared = sorted(set(adam) & set(frozen))
  assert [adam[s] for s in shared if s <= SIZES.freeze_step] == [
      frozen[s] for s in shared if s <= SIZES.freeze_step]
  after = [s for s in shared if s > SIZES.freeze_step]
  assert len(after) >= 2
  assert all(frozen[s] < adam[s] for s in after)


def _row(onset_step, ratio_median=None):
  return {'onset_step': onset_step, 'ratio_median': ratio_median,
          'at_edge': ratio_median is not None and abs(
              ratio_median - 1) <= aeos.BAND}


@pytest.mark.parametrize('adam, frozen, holds', [
    # The paper's Fig. 16: Adam under the onset, frozen Adam there soon.
    (_row(None), _row(SIZES.freeze_step + 50, 1.02), True),
    (_row(SIZES.freeze_step + 50, 0.95), _row(SIZES.freeze_step + 50, 1.02),
     False),  # Adam reached the edge itself.
    (_row(None), _row(None), False),  # Freezing changed nothing.
    (_row(None), _row(SIZES.freeze_step, 1.02), False),  # Before the freeze.
    (_row(None), _row(SIZES.steps, 1.02), False),  # Not "at once".
    (_row(None), _row(SIZES.freeze_step + 50, 1.3), False),  # Overshoots.
])
def test_the_criterion_can_hold_and_fail(adam, frozen, holds):
  assert figure_16.judge(adam, frozen, SIZES) is holds


def test_the_paper_scale_is_fig_16s_run():
  """Not run here (CIFAR-10 cannot be downloaded): the CNN on 5,000
  images at η = 2.236e-6, frozen at step 6,000 of 12,000."""
  sizes = figure_16.SCALES['paper']
  assert sizes.workload in registry.names()
  assert (sizes.workload, sizes.train_size, sizes.learning_rate,
          sizes.freeze_step, sizes.steps) == ('cifar10_cnn', 5000, 2.236e-6,
                                              6000, 12_000)
