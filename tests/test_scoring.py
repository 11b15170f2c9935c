"""Time-to-target, tuning aggregation, profiles and scores, by hand."""

import math

import numpy as np
import pytest

from harness import records
from scoring import scores
from tests import scoring_fixtures as fx

INF = math.inf


def _run(study, trial, time_s, steps=None, workload='w', submission='s'):
  status = (records.Status.REACHED_TARGET if math.isfinite(time_s)
            else records.Status.BUDGET_EXHAUSTED)
  return scores.RunScore(workload, submission, study, trial, status, time_s,
                         steps)


# ---- Per-run time to target, read from records ----


@pytest.mark.parametrize('status', [
    'diverged', 'error', 'interrupted', 'budget_exhausted'])
def test_failed_runs_have_infinite_time(tmp_path, status):
  path = fx.write_run(tmp_path, 'w', 's', status=status,
                      time_to_target_s=12.0, steps_to_target=100)
  score = scores.run_score(records.read_run(path))
  assert score.time_to_target_s == INF
  assert score.steps_to_target is None
  assert not score.reached


@pytest.mark.parametrize('status', [
    'diverged', 'error', 'interrupted', 'budget_exhausted'])
def test_a_recorded_time_to_target_counts_whatever_the_status(tmp_path,
                                                              status):
  path = fx.write_run(tmp_path, 'w', 's', status=status, reached=True,
                      time_to_target_s=12.0, steps_to_target=100,
                      summary_overrides={'final_step': 150})
  score = scores.run_score(records.read_run(path))
  assert (score.time_to_target_s, score.steps_to_target) == (12.0, 100)
  assert score.status is records.Status(status) and score.reached


def test_unfinished_run_has_infinite_time_running_or_killed(tmp_path):
  path = fx.write_run(tmp_path, 'w', 's', finished=False)
  with records.RunLock(path) as lock:
    lock.acquire('2025-01-01T00:00:00')
    running = records.read_run(path)
  killed = records.read_run(path)
  assert running.status is records.Status.RUNNING
  assert 'pid' in running.lock_holder
  assert killed.status is records.Status.KILLED and killed.lock_holder is None
  for record in (running, killed):
    score = scores.run_score(record)
    assert score.status is record.status
    assert score.time_to_target_s == INF


@pytest.mark.parametrize('change, message', [
    ({'time_to_target_s': 8.0}, 'time_to_target_s 8.0 does not match'),
    ({'steps_to_target': 91}, 'steps_to_target 91 does not match'),
    ({'time_to_target_s': math.nan}, 'time_to_target_s nan does not match'),
    # The AlgoPerf time agrees; the compile-free time beside it does not.
    ({'time_to_target_compile_free_s': 9.0},
     'time_to_target_compile_free_s 9.0 does not match'),
])
def test_summary_claim_must_match_first_target_evaluation(tmp_path, change,
                                                          message):
  path = fx.write_run(tmp_path, 'w', 's', time_to_target_s=9.0,
                      steps_to_target=90, summary_overrides=change)
  with pytest.raises(records.RecordError, match=message) as error:
    scores.run_score(records.read_run(path))
  # Both files are named, and what metrics.jsonl shows.
  assert str(path / 'summary.json') in str(error.value)
  assert str(path / 'metrics.jsonl') in str(error.value)
  assert 'step 90 at submission_time_s 9.0' in str(error.value)


def test_claim_without_a_target_evaluation_is_refused(tmp_path):
  # A failed run's summary that still names a time to target.
  path = fx.write_run(tmp_path, 'w', 's', status='budget_exhausted',
                      summary_overrides={'time_to_target_s': 5.0})
  with pytest.raises(records.RecordError,
                     match='claims the target .* no evaluation with '
                     'target_reached'):
    scores.run_score(records.read_run(path))


def test_first_target_evaluation_is_the_lowest_step(tmp_path):
  path = fx.write_run(tmp_path, 'w', 's', time_to_target_s=9.0,
                      steps_to_target=90)
  with open(path / records.METRICS_FILE, 'a', encoding='utf-8') as f:
    f.write(records.dumps(records.EvalRecord(
        step=120, submission_time_s=12.0, compile_free_time_s=11.0,
        train_loss=0.1,
        target_reached=True, eval_seconds=0.1,
        metrics={'validation/accuracy': 0.9})) + '\n')
  score = scores.run_score(records.read_run(path))
  assert (score.time_to_target_s, score.steps_to_target) == (9.0, 90)


def test_reached_run_time_and_steps_from_summary(tmp_path):
  path = fx.write_run(tmp_path, 'w', 's', time_to_target_s=12.5,
                      steps_to_target=250)
  score = scores.run_score(records.read_run(path))
  assert (score.time_to_target_s, score.steps_to_target) == (12.5, 250)
  assert (score.study, score.trial) == (0, 0)


def test_reached_run_without_summary_time_falls_back_to_metrics(tmp_path):
  path = fx.write_run(
      tmp_path, 'w', 's', time_to_target_s=9.0, steps_to_target=90,
      summary_overrides={'time_to_target_s': None, 'steps_to_target': None})
  score = scores.run_score(records.read_run(path))
  # The fixture's last evaluation reaches the target at (90, 9.0 s).
  assert (score.time_to_target_s, score.steps_to_target) == (9.0, 90)


def test_reached_run_without_any_time_is_a_record_error(tmp_path):
  path = fx.write_run(tmp_path, 'w', 's', status='budget_exhausted',
                      summary_overrides={'status': 'reached_target'})
  with pytest.raises(records.RecordError, match='time_to_target_s'):
    scores.run_score(records.read_run(path))


# ---- Tuning aggregation ----


def test_study_takes_fastest_trial_and_median_over_studies():
  runs = [_run(0, 0, 30.0, 300), _run(0, 1, INF), _run(0, 2, 20.0, 200),
          _run(1, 0, INF), _run(1, 1, INF),
          _run(2, 0, 15.0, 150), _run(2, 1, 40.0, 400)]
  tuned = scores.tuned_time(runs)
  assert [s.time_s for s in tuned.studies] == [20.0, INF, 15.0]
  assert [s.trial for s in tuned.studies] == [2, None, 0]
  assert tuned.time_s == 20.0  # median(20, inf, 15)
  assert tuned.steps == 200.0
  assert tuned.representative == (0, 2)
  assert tuned.num_runs == 7


def test_median_with_two_failed_studies_is_infinite():
  runs = [_run(0, 0, 10.0), _run(1, 0, INF), _run(2, 0, INF)]
  tuned = scores.tuned_time(runs)
  assert tuned.time_s == INF
  assert tuned.representative is None


def test_even_number_of_studies_averages_middle_two():
  tuned = scores.tuned_time([_run(0, 0, 10.0), _run(1, 0, 30.0)])
  assert tuned.time_s == 20.0
  assert tuned.representative == (0, 0)  # The lower median study.
  assert scores.tuned_time([_run(0, 0, 10.0), _run(1, 0, INF)]).time_s == INF


def test_ties_within_a_study_go_to_lower_trial():
  best = scores.study_best([_run(0, 3, 5.0), _run(0, 1, 5.0)])
  assert (best.trial, best.time_s) == (1, 5.0)


def test_tuned_time_rejects_mixed_keys():
  with pytest.raises(ValueError, match='one workload and submission'):
    scores.tuned_time([_run(0, 0, 1.0), _run(0, 1, 1.0, submission='t')])


def test_median_helper():
  assert scores.median([]) == INF
  assert scores.median([3.0, 1.0, 2.0]) == 2.0
  assert scores.median([1.0, INF, INF]) == INF


# ---- Ratios, profiles, scores ----

# Three submissions, three workloads; hand-computed below.
TIMES = {
    'a': {'w1': 10.0, 'w2': 20.0, 'w3': INF},
    'b': {'w1': 10.0, 'w2': 40.0, 'w3': INF},   # Tied with a on w1.
    'c': {'w1': 25.0},                           # w2, w3 missing: failed.
}
WORKLOADS = ('w1', 'w2', 'w3')  # w3: every submission failed.


def test_ratios_by_hand():
  ratios = scores.performance_ratios(TIMES, WORKLOADS)
  assert ratios['a'] == {'w1': 1.0, 'w2': 1.0, 'w3': INF}
  assert ratios['b'] == {'w1': 1.0, 'w2': 2.0, 'w3': INF}
  assert ratios['c'] == {'w1': 2.5, 'w2': INF, 'w3': INF}


def test_rho_by_hand():
  ratios = scores.performance_ratios(TIMES, WORKLOADS)
  assert scores.rho(ratios['a'], 1.0, 3) == pytest.approx(2 / 3)
  assert scores.rho(ratios['b'], 1.0, 3) == pytest.approx(1 / 3)
  assert scores.rho(ratios['b'], 1.999, 3) == pytest.approx(1 / 3)
  assert scores.rho(ratios['b'], 2.0, 3) == pytest.approx(2 / 3)
  assert scores.rho(ratios['c'], 2.4, 3) == 0.0
  assert scores.rho(ratios['c'], 4.0, 3) == pytest.approx(1 / 3)


def test_scores_by_hand_with_all_failed_workload():
  ratios = scores.performance_ratios(TIMES, WORKLOADS)
  # B = sum over workloads with r <= 4 of (4 - r), / (n * (4 - 1)), n = 3.
  assert scores.benchmark_score(ratios['a'], 3) == pytest.approx(6 / 9)
  assert scores.benchmark_score(ratios['b'], 3) == pytest.approx(5 / 9)
  assert scores.benchmark_score(ratios['c'], 3) == pytest.approx(1.5 / 9)


def test_ratio_beyond_tau_max_earns_nothing():
  ratios = scores.performance_ratios({'a': {'w': 10.0}, 'b': {'w': 50.0}},
                                     ['w'])
  assert ratios['b']['w'] == 5.0
  assert scores.benchmark_score(ratios['b'], 1) == 0.0
  assert scores.benchmark_score(ratios['b'], 1, tau_max=6.0) == \
      pytest.approx(1 / 5)


def test_single_submission_scores_fraction_reached():
  ratios = scores.performance_ratios({'only': {'w1': 5.0, 'w2': INF}},
                                     ['w1', 'w2'])
  assert ratios['only'] == {'w1': 1.0, 'w2': INF}
  assert scores.benchmark_score(ratios['only'], 2) == pytest.approx(0.5)
  assert scores.ranks({'only': 0.5}) == {'only': 1}


def test_exact_score_matches_fine_trapezoid_of_profile():
  ratios = scores.performance_ratios(TIMES, WORKLOADS)
  taus = np.linspace(1.0, 4.0, 30001)
  for submission, per in ratios.items():
    rho = [scores.rho(per, t, 3) for t in taus]
    approx = np.trapezoid(rho, taus) / 3.0
    assert scores.benchmark_score(per, 3) == pytest.approx(approx, abs=1e-3)


def test_profile_grid_holds_breakpoints_and_is_monotone():
  ratios = scores.performance_ratios(TIMES, WORKLOADS)
  profile = scores.performance_profile(ratios, 3)
  assert profile.taus[0] == 1.0 and profile.taus[-1] == 4.0
  assert 2.0 in profile.taus and 2.5 in profile.taus
  assert len(profile.taus) == 100 + 1  # 2.5 is not on the 100-point grid.
  for values in profile.rho.values():
    assert all(x <= y for x, y in zip(values, values[1:]))
  assert profile.rho['a'][0] == pytest.approx(2 / 3)
  assert profile.rho['c'][-1] == pytest.approx(1 / 3)


def test_ranks_with_ties():
  assert scores.ranks({'a': 0.5, 'b': 0.9, 'c': 0.5, 'd': 0.1}) == {
      'b': 1, 'a': 2, 'c': 2, 'd': 4}


def test_tied_times_give_identical_scores_and_shared_rank():
  times = {'x': {'w1': 7.0, 'w2': 3.0}, 'y': {'w1': 7.0, 'w2': 3.0},
           'z': {'w1': 14.0, 'w2': 3.0}}
  ratios = scores.performance_ratios(times, ['w1', 'w2'])
  got = {s: scores.benchmark_score(r, 2) for s, r in ratios.items()}
  assert got['x'] == got['y'] == 1.0
  assert got['z'] == pytest.approx((2 + 3) / 6)
  assert scores.ranks(got) == {'x': 1, 'y': 1, 'z': 3}


def test_all_failed_everywhere_scores_zero():
  ratios = scores.performance_ratios({'a': {'w': INF}, 'b': {}}, ['w'])
  assert ratios == {'a': {'w': INF}, 'b': {'w': INF}}
  assert scores.benchmark_score(ratios['a'], 1) == 0.0


def test_zero_best_time():
  ratios = scores.performance_ratios({'a': {'w': 0.0}, 'b': {'w': 3.0}},
                                     ['w'])
  assert ratios == {'a': {'w': 1.0}, 'b': {'w': INF}}


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='tau_max'):
    scores.benchmark_score({'w': 1.0}, 1, tau_max=1.0)
  with pytest.raises(ValueError, match='num_workloads'):
    scores.benchmark_score({'w': 1.0}, 0)
