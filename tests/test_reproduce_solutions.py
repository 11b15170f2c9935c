"""Figs. 10 and 11 at a tiny size: sharpness at exact solutions, judged
from the records.

At this size (500 images, solutions within 20-120 steps) Adam's η trend
holds while its β2 trend and the comparison with momentum do not
(RESULTS.md gives the default scale's): the tests assert the part that
holds, and that each verdict is its criterion applied to the records.
"""

from __future__ import annotations

import pytest

from harness import records
from scoring import paper_figures
from scoring.paper_figures import figures_10_and_11 as solutions


@pytest.fixture(name='measured', scope='module')
def _measured(tmp_path_factory):
  out = tmp_path_factory.mktemp('solutions')
  return out, (paper_figures.reproduce('10', out, scale='tiny'),
               paper_figures.reproduce('11', out, scale='tiny'))


def _runs(outcome):
  return [r for r in outcome.rows if 'run' in r]


def test_every_solution_is_probed_at_its_exact_step(measured):
  _, (ten, eleven) = measured
  for row in _runs(ten) + _runs(eleven):
    run = records.read_run(row['run'])
    (probe,) = [p for p in run.curvature
                if p.reason is records.ProbeReason.SOLUTION]
    assert probe.step == row['solution_step'] == run.summary.solution_step
    # Measured on the whole training set: below fmnist_fc's threshold.
    assert probe.train_loss < 0.1 and probe.curvature_batch_size == 500
    assert row['sharpness_at_solution'] == probe.sharpness
  # Fig. 11 reads Adam's η sweep from the runs Fig. 10 trained.
  adam = {r['run'] for r in _runs(eleven) if r['submission'] == solutions.ADAM}
  assert adam and adam <= {r['run'] for r in _runs(ten)}


def test_fig10_smaller_eta_finds_sharper_solutions(measured):
  _, (ten, _) = measured
  (eta, beta2) = [r for r in ten.rows if 'swept' in r]
  assert eta['swept'] == 'learning_rate' and eta['holds'], ten.verdict
  by_eta = sorted((r for r in _runs(ten) if r['beta2'] == 0.999 and
                   r['learning_rate'] in
                   solutions.SCALES['tiny'].adam_learning_rates),
                  key=lambda r: r['learning_rate'])
  assert eta['fall'] == pytest.approx(
      by_eta[0]['sharpness_at_solution'] / by_eta[-1]['sharpness_at_solution'])
  assert eta['fall'] >= solutions.TREND
  # The verdict is its criterion on both sweeps, no more and no less.
  assert ten.holds == (eta['holds'] and beta2['holds'])


def test_fig11_verdict_is_its_criterion_on_the_pairs(measured):
  _, (_, eleven) = measured
  pairs = [r for r in eleven.rows if 'ratio' in r]
  momentum = sorted((r for r in _runs(eleven)
                     if r['submission'] == solutions.MOMENTUM),
                    key=lambda r: r['solution_step'])
  for pair in pairs:  # Within momentum's range of steps, by construction.
    assert (momentum[0]['solution_step'] <= pair['solution_step'] <=
            momentum[-1]['solution_step'])
  assert eleven.holds == (len(pairs) >= 2 and
                          min(p['ratio'] for p in pairs) >= solutions.TREND)


def test_a_bad_workload_is_one_line(tmp_path):
  with pytest.raises(paper_figures.ScaleError,
                     match="unknown workload 'no_such_workload'"):
    paper_figures.reproduce('10', tmp_path, scale='tiny',
                            workload='no_such_workload')
  with pytest.raises(paper_figures.ScaleError, match='trains no network'):
    paper_figures.reproduce('2', tmp_path, scale='tiny', workload='fmnist_fc')
