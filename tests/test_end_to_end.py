"""Real runs of two baselines, a leaderboard over them, and a compare."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from harness import config as config_lib
from harness import records
from harness import runner
from scoring import comparison
from scoring import report_files
from workloads import image_classification



class _WithinReach(image_classification.FashionMnistFC):
  """fmnist_fc with the target and budget it had before calibration, which
  every run here reaches within 400 steps, so the leaderboard ranks finite
  times; fmnist_fc's calibrated target is one for tuned AdamW."""

  name = 'fmnist_fc_within_reach'
  target_value = 0.84
  step_budget = 400
  runtime_budget_s = 1800.0


RUN = dict(workload='fmnist_fc', train_size=5000, chunk_size=1000,
           eval_every=20, max_steps=400, quiet=True,
           curvature=config_lib.CurvatureConfig(every=40, num_iterations=20))


def _train(experiment_dir, submission, hparams):
  return runner.train(config_lib.RunConfig(
      submission=submission, hparams=hparams,
      experiment_dir=str(experiment_dir), **RUN), workload=_WithinReach())


@pytest.fixture(scope='module')
def reports(tmp_path_factory):
  root = tmp_path_factory.mktemp('e2e')
  # Before: Adam at its default step size; after: a 3x larger one.
  _train(root / 'before', 'adam', {'learning_rate': 1e-3})
  _train(root / 'before', 'gd', {'learning_rate': 0.1})
  _train(root / 'after', 'adam', {'learning_rate': 3e-3})
  _train(root / 'after', 'gd', {'learning_rate': 0.1})
  before = report_files.build_report([root / 'before'], root / 'report_a')
  after = report_files.build_report([root / 'after'], root / 'report_b')
  return root, before, after


def test_leaderboard_ranks_real_runs(reports):
  _, before, _ = reports
  board = before.leaderboard
  assert not board.skipped
  (group,) = board.groups
  assert set(group.submissions) == {'adam', 'gd'}
  adam, gd = (group.cell(_WithinReach.name, 'adam'),
               group.cell(_WithinReach.name, 'gd'))
  # Both reach the target; Adam sooner, so it ranks first with score 1.
  standings = {s.submission: s for s in group.standings}
  assert standings['adam'].rank == 1 and standings['adam'].score == 1.0
  assert standings['gd'].rank == 2 and standings['gd'].score < 1.0
  assert adam.time_s < gd.time_s < float('inf')
  assert adam.aeos.num_probes > 0 and adam.aeos.preconditioned
  assert gd.aeos.num_probes > 0 and not gd.aeos.preconditioned


def test_report_files_are_consistent(reports):
  _, before, _ = reports
  data = json.loads((before.out_dir / 'leaderboard.json').read_text())
  scores = {s['submission']: s['score'] for g in data['groups']
            for s in g['standings']}
  standings = before.leaderboard.groups[0].standings
  assert scores == {s.submission: s.score for s in standings}
  # Every view agrees with the run records it was built from.
  with open(before.out_dir / 'runs.csv', newline='', encoding='utf-8') as f:
    rows = {r['submission']: r for r in csv.DictReader(f)}
  assert set(rows) == {'adam', 'gd'}
  for name, row in rows.items():
    run = records.read_run(row['path'])
    assert run.submission == name and row['status'] == run.status.value
    assert float(row['time_to_target_s']) == run.summary.time_to_target_s
    assert int(row['steps_to_target']) == run.summary.steps_to_target
    assert int(row['final_step']) == run.summary.final_step
  with open(before.out_dir / 'scores.csv', newline='', encoding='utf-8') as f:
    assert {r['submission']: float(r['score']) for r in csv.DictReader(f)
            } == pytest.approx(scores)
  markdown = (before.out_dir / 'report.md').read_text(encoding='utf-8')
  html = (before.out_dir / 'index.html').read_text(encoding='utf-8')
  for standing in standings:
    assert f'| {standing.rank} | {standing.submission} |' in markdown
    assert f'<td>{standing.submission}</td>' in html
  figures = [f for f in before.files if f.startswith('figures/')]
  assert figures and all(f'({f})' in markdown for f in figures)
  assert html.count('src="data:image/png;base64,') == len(figures)


def test_compare_reports(reports):
  root, _, _ = reports
  changes = comparison.compare_reports(root / 'report_a', root / 'report_b')
  times = {t.submission: t for t in changes.times}
  assert set(times) == {'adam', 'gd'}
  assert times['gd'].time_a == pytest.approx(times['gd'].time_b, rel=0.5)
  out = subprocess.run(
      [sys.executable, '-m', 'scoring.compare',
       f'--before={root / "report_a"}', f'--after={root / "report_b"}'],
      capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert 'adam' in out.stdout and 'gd' in out.stdout
