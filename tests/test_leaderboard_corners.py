"""Corners where a leaderboard could contradict the records, cell by cell.

Each test writes hand-made run directories (`tests.scoring_fixtures`) and
checks the cell of the table a reader would look at, through `tables` or
the Markdown text.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import subprocess
import sys

import pytest

from harness import records
from scoring import aeos
from scoring import leaderboard
from scoring import report_markdown
from scoring import tables
from tests import scoring_fixtures as fx

REPO = pathlib.Path(__file__).resolve().parents[1]


def _row(table: tables.Table, *key: str) -> dict[str, str]:
  """The row whose leading cells are `key`, as {column: cell}."""
  (row,) = [r for r in table.rows if r[:len(key)] == key]
  return dict(zip(table.columns, row))


def _only_group(board: leaderboard.Leaderboard) -> leaderboard.RankingGroup:
  (group,) = board.groups
  return group


def _markdown(board: leaderboard.Leaderboard) -> str:
  return report_markdown.render_markdown(board, ())


# ---- A time to target, once recorded, counts ----


@pytest.mark.parametrize('status', ['interrupted', 'diverged',
                                    'budget_exhausted'])
def test_a_run_that_ended_otherwise_after_the_target_scores_its_time(
    tmp_path, status):
  later = fx.write_run(tmp_path, 'w', 'adam', status=status, reached=True,
                       time_to_target_s=6.0, steps_to_target=60,
                       summary_overrides={'final_step': 90})
  fx.write_run(tmp_path, 'w', 'sgd', time_to_target_s=12.0,
               steps_to_target=120)
  board = leaderboard.compute_leaderboard([tmp_path])
  group = _only_group(board)
  time = _row(tables.time_table(group), 'w', 'adam')
  assert time['time to target'] == '6 s'
  assert time['ratio to best'] == '1'
  assert time['trials reached'] == '1/1'
  assert _row(tables.runs_table(board), 'w', 'adam')['status'] == status
  scores = {s.submission: s.score for s in group.standings}
  assert scores == {'adam': 1.0, 'sgd': pytest.approx((4 - 2) / 3)}
  assert tables.time_table(group).run_paths[0] == str(later)


def test_a_run_ending_before_the_target_still_fails(tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', status='interrupted')
  board = leaderboard.compute_leaderboard([tmp_path])
  cell = _row(tables.time_table(_only_group(board)), 'w', 'adam')
  assert cell['time to target'] == tables.NOT_REACHED
  assert cell['trials reached'] == '0/1'


# ---- Whose failure an error is ----


def test_set_up_errors_are_skipped_submission_errors_fail(tmp_path):
  fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=5.0,
               steps_to_target=50)
  setup = fx.write_run(tmp_path, 'w', 'adam', 1, status='error',
                       summary_overrides={
                           'final_step': 0, 'error_kind': 'setup',
                           'error': 'FileNotFoundError: no data in /d'})
  harness = fx.write_run(tmp_path, 'w', 'adam', 2, status='error',
                         summary_overrides={
                             'error_kind': 'harness',
                             'error': 'OSError: checkpoint disk full'})
  own = fx.write_run(tmp_path, 'w', 'sgd', status='error',
                     summary_overrides={'error_kind': 'submission',
                                        'error': 'FloatingPointError: nan'})
  board = leaderboard.compute_leaderboard([tmp_path])
  skipped = tables.skipped_table(board)
  assert _row(skipped, str(setup))['skipped'] == 'whole run: set-up error'
  assert _row(skipped, str(setup))['reason'].startswith(
      'set-up error before the first update: FileNotFoundError: no data in '
      f'/d ({setup}/summary.json')
  assert _row(skipped, str(harness))['reason'].startswith(
      "harness error (evaluation, probe or checkpoint), not the "
      "optimizer's: OSError: checkpoint disk full")
  assert 'Nothing was skipped' not in (skipped.caption or '')
  group = _only_group(board)
  adam = _row(tables.time_table(group), 'w', 'adam')
  assert adam['trials reached'] == '1/1'  # The errors are not trials.
  assert adam['time to target'] == '5 s'
  sgd = _row(tables.time_table(group), 'w', 'sgd')
  assert sgd['time to target'] == tables.NOT_REACHED
  assert str(own) in {r.path for r in board.runs}
  assert '2 runs skipped (1 harness error, 1 set-up error)' in _markdown(
      board)


def test_a_set_up_error_is_the_lowest_tier_of_duplicates(tmp_path):
  a, b = tmp_path / 'a', tmp_path / 'b'
  killed = fx.write_run(a, 'w', 'adam', finished=False)
  fx.write_run(b, 'w', 'adam', status='error', start_time='2026-01-01',
               summary_overrides={'final_step': 0, 'error_kind': 'setup',
                                  'error': 'ImportError: no module'})
  board = leaderboard.compute_leaderboard([a, b])
  reasons = {s.path: s for s in board.skipped}
  dropped = reasons[str(b / 'w/adam/study_0/trial_0')]
  assert dropped.kind is leaderboard.SkipKind.DUPLICATE
  assert dropped.reason.endswith('kept a run that has not finished over a '
                                 'set-up error or inconsistent records')
  assert reasons[str(killed)].kind is leaderboard.SkipKind.KILLED


# ---- Missing runs ----


def _missing_experiment(root):
  for submission, time_s in (('adam', 4.0), ('sgd', 8.0)):
    fx.write_run(root, 'w1', submission, time_to_target_s=time_s,
                 steps_to_target=int(10 * time_s))
  fx.write_run(root, 'w2', 'adam', time_to_target_s=3.0, steps_to_target=30)


def test_missing_run_counts_as_failed_by_default(tmp_path):
  _missing_experiment(tmp_path)
  board = leaderboard.compute_leaderboard([tmp_path])
  group = _only_group(board)
  assert group.missing == (('sgd', 'w2'),)
  assert _row(tables.time_table(group), 'w2', 'sgd')['time to target'] == (
      tables.NO_RUN)
  assert _row(tables.ranking_table(group, 4.0), '2', 'sgd')[
      'workloads reached'] == '1/2'
  text = _markdown(board)
  assert ("submission 'sgd' has no run on workload 'w2'; counted as failed "
          'there (--missing_runs=fail') in text
  # sgd: w1 ratio 2 earns (4 - 2) / (2 * 3); w2 counts 0.
  assert {s.submission: s.score for s in group.standings}['sgd'] == (
      pytest.approx(2 / 6))


def test_missing_run_common_ranks_over_shared_workloads(tmp_path):
  _missing_experiment(tmp_path)
  board = leaderboard.compute_leaderboard([tmp_path], missing_runs='common')
  group = _only_group(board)
  assert [w.name for w in group.workloads] == ['w1']
  assert group.left_out == ('w2',)
  assert _row(tables.ranking_table(group, 4.0), '2', 'sgd')[
      'workloads reached'] == '1/1'
  assert {s.submission: s.score for s in group.standings}['sgd'] == (
      pytest.approx(2 / 3))
  assert not [r for r in tables.time_table(group).rows if r[0] == 'w2']
  assert ("submission 'sgd' has no run on workload 'w2'; ranked over the 1 "
          'workloads every submission has (--missing_runs=common); left '
          'out: w2.') in _markdown(board)


def test_missing_run_refuse_names_each_missing_cell(tmp_path):
  _missing_experiment(tmp_path)
  with pytest.raises(leaderboard.MissingRunsError,
                     match="group 'cpu', submission 'sgd' has no run on "
                     "workload 'w2'"):
    leaderboard.compute_leaderboard([tmp_path], missing_runs='refuse')


def test_missing_run_refuse_is_one_line_and_exit_2(tmp_path):
  _missing_experiment(tmp_path / 'exp')
  run = subprocess.run(
      [sys.executable, '-m', 'scoring.report',
       f'--experiment_dirs={tmp_path / "exp"}', f'--out={tmp_path / "r"}',
       '--missing_runs=refuse'],
      cwd=REPO, capture_output=True,
      text=True, timeout=120)
  assert run.returncode == 2, run.stderr
  (line,) = run.stderr.strip().splitlines()
  assert line.startswith('scoring.report: error: missing runs')
  assert not (tmp_path / 'r').exists()


# ---- Nested run directories ----


def test_nested_run_directories_are_found_and_listed(tmp_path):
  fx.write_run(tmp_path / 'study' / 'lr_sweep', 'w', 'adam',
               time_to_target_s=3.0, steps_to_target=30)
  fx.write_run(tmp_path / 'study' / 'lr_sweep', 'w', 'adam', 0, 1,
               time_to_target_s=2.0, steps_to_target=20)
  nested = fx.write_run(tmp_path, 'w', 'sgd', time_to_target_s=4.0,
                        steps_to_target=40)
  # A checkpoint inside a run is never taken for another run.
  inner = records.run_dir(nested / records.CHECKPOINT_DIR, 'w', 'x')
  inner.mkdir(parents=True)
  (inner / records.META_FILE).write_text('{}')
  board = leaderboard.compute_leaderboard([tmp_path])
  assert len(board.runs) == 3 and not board.skipped
  found = tables.found_table(board)
  assert _row(found, str(tmp_path), 'study/lr_sweep')['run directories'] == (
      '2')
  assert _row(found, str(tmp_path), '.')['run directories'] == '1'
  assert _row(tables.time_table(_only_group(board)), 'w', 'adam')[
      'time to target'] == '2 s'
  assert '| study/lr_sweep | 2 |' in _markdown(board)


def test_find_run_dirs_sorted_at_any_depth(tmp_path):
  deep = fx.write_run(tmp_path / 'a' / 'b' / 'c', 'w', 's')
  shallow = fx.write_run(tmp_path, 'w', 's')
  meta_only = tmp_path / 'loose' / 'run'
  meta_only.mkdir(parents=True)
  (meta_only / records.META_FILE).write_text('{}')
  assert list(records.find_run_dirs(tmp_path)) == sorted(
      [deep, shallow, meta_only])
  assert list(records.find_run_dirs(tmp_path / 'nowhere')) == []


# ---- Noise ----


def test_unequal_trials_warn_and_the_spread_is_shown(tmp_path):
  for trial, time_s in enumerate((5.0, 7.0, math.inf)):
    fx.write_run(tmp_path, 'w', 'adam', 0, trial,
                 status='reached_target' if math.isfinite(time_s) else
                 'budget_exhausted',
                 time_to_target_s=time_s if math.isfinite(time_s) else None,
                 steps_to_target=int(10 * time_s) if math.isfinite(time_s)
                 else None)
  fx.write_run(tmp_path, 'w', 'adam', 1, time_to_target_s=9.0,
               steps_to_target=90)
  fx.write_run(tmp_path, 'w', 'sgd', 0, time_to_target_s=10.0,
               steps_to_target=80)
  fx.write_run(tmp_path, 'w', 'sgd', 1, time_to_target_s=12.0,
               steps_to_target=120)
  board = leaderboard.compute_leaderboard([tmp_path])
  group = _only_group(board)
  (warning,) = group.warnings
  assert warning.startswith("Workload 'w': unequal numbers of trials per "
                            'study (adam 3, 1; sgd 1, 1)')
  assert f'> **Warning:** {warning}' in _markdown(board)
  adam = _row(tables.time_table(group), 'w', 'adam')
  assert adam['time to target'] == '7 s'  # median(5, 9)
  assert adam['studies: fastest, min–max'] == '5–9 s'
  assert adam['trials reached'] == '3/4'
  assert adam['trials: min–max'] == '5–9 s'
  steps = _row(tables.steps_table(group), 'w', 'sgd')
  assert steps['steps to target'] == '100'  # median(80, 120)
  assert steps['ratio to fewest'] == '1.43'  # 100 / median(50, 90)
  assert steps['studies: steps, min–max'] == '80–120'


def test_unequal_studies_warn(tmp_path):
  for study in (0, 1, 2):
    fx.write_run(tmp_path, 'w', 'adam', study, time_to_target_s=5.0,
                 steps_to_target=50)
  fx.write_run(tmp_path, 'w', 'sgd', time_to_target_s=6.0,
               steps_to_target=60)
  (warning,) = _only_group(leaderboard.compute_leaderboard([tmp_path])
                           ).warnings
  assert "unequal numbers of studies (adam 3, sgd 1)" in warning


# ---- The AEoS table ----


def test_peak_ratio_of_a_run_below_the_onset(tmp_path):
  fx.write_run(tmp_path, 'w', 'sgd', status='budget_exhausted',
               curvature=fx.adam_like([0, 10, 20], [0.3, 0.7, 0.5],
                                      [1.0, 2.0, 3.0], preconditioned=False))
  board = leaderboard.compute_leaderboard([tmp_path])
  row = _row(tables.aeos_table(_only_group(board)), 'w', 'sgd')
  assert row['peak ratio'] == '0.7'
  assert row['onset step'] == tables.ONSET_NOT_REACHED
  assert row['probes (from onset)'] == '3'
  assert _row(tables.runs_table(board), 'w', 'sgd')['peak ratio'] == '0.7'


def test_threshold_unknown_is_said(tmp_path):
  unknown = [dataclasses.replace(fx.probe(s, 1.0), threshold_ratio=None,
                                 stability_threshold=None,
                                 threshold_unknown='no learning rate')
             for s in (0, 10)]
  fx.write_run(tmp_path, 'w', 'x', time_to_target_s=1.0, steps_to_target=10,
               curvature=unknown)
  row = _row(tables.aeos_table(_only_group(
      leaderboard.compute_leaderboard([tmp_path]))), 'w', 'x')
  assert row['median ratio'] == tables.THRESHOLD_UNKNOWN
  assert row['peak ratio'] == tables.THRESHOLD_UNKNOWN


def test_missing_sharpness_at_solution_says_why(tmp_path):
  fx.write_run(tmp_path, 'w', 'stopped', time_to_target_s=3.0,
               steps_to_target=30, curvature=fx.rising_probes(4))
  fx.write_run(tmp_path, 'w', 'unprobed', time_to_target_s=4.0,
               steps_to_target=40, curvature=fx.rising_probes(4),
               summary_overrides={'solution_step': 35, 'final_step': 60})
  fx.write_run(tmp_path, 'w', 'measured', time_to_target_s=5.0,
               steps_to_target=50, curvature=fx.rising_probes(4),
               summary_overrides={'solution_step': 20, 'final_step': 60})
  table = tables.aeos_table(_only_group(
      leaderboard.compute_leaderboard([tmp_path])))
  column = 'λ1(H) at solution'
  assert _row(table, 'w', 'stopped')[column] == aeos.STOPPED_AT_TARGET
  assert '--keep_training_past_target' in aeos.STOPPED_AT_TARGET
  assert _row(table, 'w', 'unprobed')[column] == (
      'no probe at the solution step (35)')
  assert _row(table, 'w', 'measured')[column] == '5'  # The probe at 20.
  assert len(table.column_notes) >= len(table.columns) - 3


def test_rows_link_their_runs(tmp_path):
  adam = fx.write_run(tmp_path, 'w', 'adam', time_to_target_s=3.0,
                      steps_to_target=30, curvature=fx.rising_probes(4))
  board = leaderboard.compute_leaderboard([tmp_path])
  group = _only_group(board)
  for table in (tables.time_table(group), tables.steps_table(group),
                tables.aeos_table(group), tables.runs_table(board)):
    assert table.run_paths == (str(adam),), table.title
