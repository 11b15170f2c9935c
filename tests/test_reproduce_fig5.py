"""Fig. 5 at its tiny size: each method's criterion is asserted from the
records, and a wrong threshold would be seen."""

from __future__ import annotations

import json

import pytest

from harness import records
from scoring import aeos
from scoring import paper_figures
from scoring.paper_figures import figure_5


@pytest.fixture(name='reproduced', scope='module')
def _reproduced(tmp_path_factory):
  """The tiny figure, measured once: its directory and outcome."""
  out = tmp_path_factory.mktemp('fig5')
  return out, paper_figures.reproduce_figure(figure_5.FIGURE, out,
                                             scale='tiny')


def test_fig5_methods_equilibrate_at_their_own_threshold(reproduced):
  out, outcome = reproduced
  assert outcome.holds, outcome.verdict
  assert [row['submission'] for row in outcome.rows] == ['nadam']
  for row in outcome.rows:
    run = records.read_run(row['run'])
    stats = aeos.aeos_stats(run.curvature, run.summary)
    # The table is the records' statistics, and the criterion holds on them.
    assert row['ratio_median'] == stats.ratio_median
    assert row['onset_step'] == stats.onset_step is not None
    assert abs(stats.ratio_median - 1) <= aeos.BAND
    _, constant = figure_5.PAPER[row['submission']]
    assert all(p.stability_threshold == pytest.approx(
        constant / row['learning_rate']) for p in run.curvature)
  # NAdam's is the paper's 13.57/η, not Adam's 38/η.
  assert figure_5.PAPER['nadam'][1] == pytest.approx(13.5714, rel=1e-5)
  saved = json.loads((out / 'fig5.json').read_text())
  assert saved['holds'] and len(saved['rows']) == 1
  assert (out / 'fig5.png').read_bytes()[:4] == b'\x89PNG'


def test_fig5_would_see_nadam_at_adams_threshold(monkeypatch, reproduced):
  """Judged against heavy-ball's 38/η, the same NAdam run fails; nothing
  trains again (the suite resumes)."""
  out, _ = reproduced
  monkeypatch.setitem(figure_5.PAPER, 'nadam',
                      ('NAdam', figure_5.EMA_HEAVY_BALL))
  outcome = paper_figures.reproduce_figure(
      figure_5.FIGURE, out / 'wrong', scale='tiny', experiment_dir=out / 'runs')
  assert not outcome.holds
  (nadam,) = outcome.rows
  assert not nadam['paper_threshold'] and not nadam['equilibrated']
  assert nadam['ratio_median'] == reproduced[1].rows[0]['ratio_median']
