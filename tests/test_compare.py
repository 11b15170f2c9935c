"""scoring.compare: new and gone, tie moves, changed runs, the command."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess

import pytest

from scoring import comparison
from scoring import leaderboard
from scoring import report_files
from tests import commands
from tests import scoring_fixtures as fx

REPO = pathlib.Path(__file__).resolve().parents[1]


def _board(root: pathlib.Path) -> dict:
  return report_files.leaderboard_json(leaderboard.compute_leaderboard([root]))


def _two_submissions(root: pathlib.Path, *, with_sgd: bool = True,
                     config=None, host_suffix: str = '') -> dict:
  fx.write_run(root, 'w1', 'adam', time_to_target_s=10.0, steps_to_target=100,
               config=config)
  if with_sgd:
    fx.write_run(root, 'w1', 'sgd', time_to_target_s=20.0,
                 steps_to_target=200, config=config)
  data = _board(root)
  for run in data['runs']:
    run['host'] += host_suffix
  return data


def test_a_submission_in_one_report_only_is_new_not_newly_reached(tmp_path):
  before = _two_submissions(tmp_path / 'a', with_sgd=False)
  after = _two_submissions(tmp_path / 'b')
  result = comparison.compare_leaderboards(before, after)
  ranks = {c.submission: c for c in result.ranks}
  assert ranks['sgd'].status == 'new' and not ranks['sgd'].moved
  assert ranks['adam'].status == 'both'
  times = {c.submission: c for c in result.times}
  assert (times['sgd'].in_a, times['sgd'].in_b) == (False, True)
  text = comparison.format_comparison(result)
  sgd_time = next(line for line in text.splitlines()
                  if line.startswith('| cpu | w1 | sgd |'))
  assert sgd_time.endswith('| new |'), sgd_time
  assert 'newly reached' not in text
  assert '— → 2 (new)' in text
  # And the other way round: gone, not "no longer reached".
  back = comparison.format_comparison(
      comparison.compare_leaderboards(after, before))
  assert 'no longer reached' not in back
  assert '2 → — (gone)' in back


def test_a_run_that_stops_reaching_is_still_no_longer_reached(tmp_path):
  before = _two_submissions(tmp_path / 'a')
  fx.write_run(tmp_path / 'b', 'w1', 'adam', time_to_target_s=10.0,
               steps_to_target=100)
  fx.write_run(tmp_path / 'b', 'w1', 'sgd', status='budget_exhausted')
  text = comparison.format_comparison(
      comparison.compare_leaderboards(before, _board(tmp_path / 'b')))
  assert 'no longer reached' in text


def _standings(data: dict, scores: dict[str, float], ranks: dict[str, int]
               ) -> dict:
  data = copy.deepcopy(data)
  data['groups'][0]['standings'] = [
      {'submission': s, 'score': scores[s], 'rank': ranks[s],
       'workloads_reached': 1} for s in scores]
  return data


def test_a_tie_broken_differently_is_not_a_rank_change(tmp_path):
  base = _two_submissions(tmp_path)
  # Equal scores for y and z: ranked 2, 2 in A and 2, 3 in B.
  a = _standings(base, {'x': 0.9, 'y': 0.5, 'z': 0.5},
                 {'x': 1, 'y': 2, 'z': 2})
  b = _standings(base, {'x': 0.9, 'y': 0.5, 'z': 0.5 - 1e-11},
                 {'x': 1, 'y': 2, 'z': 3})
  result = comparison.compare_leaderboards(a, b)
  ranks = {c.submission: c for c in result.ranks}
  assert not any(c.moved for c in result.ranks)
  assert (ranks['z'].rank_a, ranks['z'].rank_b) == (2, 3)
  text = comparison.format_comparison(result)
  assert 'down 1' not in text
  assert '2 → 3 (tie broken differently; not a change)' in text


def test_a_real_overtake_is_a_rank_change(tmp_path):
  base = _two_submissions(tmp_path)
  a = _standings(base, {'x': 0.9, 'y': 0.5}, {'x': 1, 'y': 2})
  # y's score is unchanged, but x dropped below it: the set of submissions
  # better than y changed, so y moved although its score did not.
  b = _standings(base, {'x': 0.4, 'y': 0.5}, {'x': 2, 'y': 1})
  ranks = {c.submission: c
           for c in comparison.compare_leaderboards(a, b).ranks}
  assert ranks['y'].moved and ranks['y'].score_delta == 0
  assert ranks['x'].moved
  text = comparison.format_comparison(comparison.compare_leaderboards(a, b))
  assert '2 → 1 (up 1)' in text and '1 → 2 (down 1)' in text


def test_a_changed_score_with_the_same_rank_is_a_change(tmp_path):
  base = _two_submissions(tmp_path)
  a = _standings(base, {'x': 0.9, 'y': 0.5}, {'x': 1, 'y': 2})
  b = _standings(base, {'x': 0.8, 'y': 0.5}, {'x': 1, 'y': 2})
  ranks = {c.submission: c
           for c in comparison.compare_leaderboards(a, b).ranks}
  assert ranks['x'].moved and not ranks['y'].moved


def test_runs_whose_flags_hparams_or_host_changed_say_so(tmp_path):
  flags_a = {'eval_every': 50, 'experiment_dir': 'runs', 'quiet': False,
             'curvature': {'every': 10, 'top_k': 1}}
  flags_b = {'eval_every': 25, 'experiment_dir': 'elsewhere', 'quiet': True,
             'curvature': {'every': 5, 'top_k': 1}}
  a = _two_submissions(tmp_path / 'a', config=flags_a)
  b = _two_submissions(tmp_path / 'b', config=flags_b, host_suffix='-2')
  b['runs'][0]['hparams']['learning_rate'] = 0.5
  changed_run = b['runs'][0]
  result = comparison.compare_leaderboards(a, b)
  changes = {(c.submission, c.study, c.trial): c for c in result.runs}
  assert set(changes) == {('adam', 0, 0), ('sgd', 0, 0)}
  first = changes[(changed_run['submission'], 0, 0)]
  # experiment_dir and quiet do not change results: not listed.
  assert [c.name for c in first.flags] == ['curvature.every', 'eval_every']
  assert [(c.value_a, c.value_b) for c in first.flags] == [(10, 5), (50, 25)]
  assert [(c.name, c.value_a, c.value_b) for c in first.hparams] == [
      ('learning_rate', 0.01, 0.5)]
  assert (first.host.value_a, first.host.value_b) == ('test-host',
                                                      'test-host-2')
  other = next(c for c in result.runs if c is not first)
  assert other.hparams == ()
  text = comparison.format_comparison(result)
  assert 'learning_rate: 0.01 → 0.5' in text
  assert 'host: "test-host" → "test-host-2"' in text
  assert 'eval_every: 50 → 25' in text


def test_unchanged_runs_and_neutral_flags_are_not_listed(tmp_path):
  a = _two_submissions(tmp_path / 'a', config={'quiet': False,
                                               'log_every': 10})
  b = _two_submissions(tmp_path / 'b', config={'quiet': True,
                                               'log_every': 1})
  result = comparison.compare_leaderboards(a, b)
  assert result.runs == ()
  assert '## Runs whose configuration or host changed' in (
      comparison.format_comparison(result))


def _compare(*args: str) -> subprocess.CompletedProcess:
  return commands.run_module('scoring.compare', *args)


@pytest.fixture(scope='module')
def report_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('compare_report')
  data = _two_submissions(root / 'runs')
  (root / report_files.JSON_FILE).write_text(json.dumps(data))
  return root


def test_command_takes_before_and_after_flags(report_dir, tmp_path):
  out = tmp_path / 'changes.md'
  run = _compare(f'--before={report_dir}', f'--after={report_dir}',
                 f'--out={out}')
  assert run.returncode == 0, run.stderr
  assert '## Ranks and scores' in run.stdout
  assert out.read_text() == run.stdout


@pytest.mark.parametrize('args, message', [
    (('--before={missing}', '--after={good}'), 'no such file'),
    (('--before={good}',), 'give --before=REPORT_A and --after=REPORT_B'),
    (('{good}', '{good}'), 'unexpected arguments'),
    (('--before={good}', '--after={good}', '--out={missing}/x/y.md'),
     'cannot be written'),
])
def test_command_errors_are_one_line_exit_2(report_dir, tmp_path, args,
                                            message):
  missing = tmp_path / 'missing'
  run = _compare(*(a.format(good=report_dir, missing=missing) for a in args))
  assert run.returncode == 2, run.stderr
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
  assert lines[0].startswith('scoring.compare: error: ')
  assert message in lines[0]
