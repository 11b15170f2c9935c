"""Target setting: AlgoPerf's procedure (`harness.calibrate`) and its rules
(`harness.calibration`).

The rules are checked on hand-made curves; the procedure end to end on a
tiny calibration of fmnist_fc whose record is recomputed from the run
records it came from.
"""

from __future__ import annotations

import io
import math
import pathlib
import statistics
import subprocess
import sys

from absl.testing import flagsaver
import pytest

from harness import calibrate
from harness import calibration
from harness import cli
from harness import config as config_lib
from harness import records
from workloads import base
from workloads import registry


def _run(values, *, steps=None, seconds=None, seed=0):
  steps = steps or tuple(10 * i for i in range(len(values)))
  seconds = seconds or tuple(0.5 * s for s in steps)
  curve = calibration.Curve(steps=tuple(steps),
                            submission_time_s=tuple(seconds),
                            values=tuple(values))
  value, step = calibration.best(curve, higher_is_better=True)
  return calibration.CalibrationRun(
      submission='adamw', study=seed, trial=0, seed=seed, hparams={},
      status='budget_exhausted', best_value=value, best_step=step,
      curve=curve)


def test_target_is_the_median_best_and_budget_the_slowest_to_reach_it():
  seeds = [_run([0.1, 0.80, 0.84, 0.83]),   # best 0.84 at step 20
           _run([0.1, 0.86, 0.85, 0.85]),   # best 0.86 at step 10
           _run([0.1, 0.70, 0.81, 0.82]),   # best 0.82
           _run([0.1, 0.75, 0.83, 0.85]),   # best 0.85, reaches 0.84 at 30
           _run([0.1, 0.50, 0.60, 0.79])]   # best 0.79
  found = calibration.target_and_budget(seeds, higher_is_better=True,
                                        budget_margin=2.0)
  assert found.target_value == 0.84
  # Reached at steps 20, 10 and 30 (times 10, 5 and 15 s): the slowest, ×2.
  assert found.step_budget == 60
  assert found.runtime_budget_s == 30.0


def test_an_even_number_of_seeds_takes_the_middle_mean():
  seeds = [_run([0.8]), _run([0.9]), _run([0.7]), _run([1.0])]
  found = calibration.target_and_budget(seeds, higher_is_better=True,
                                        budget_margin=1.5)
  assert found.target_value == pytest.approx(0.85)
  assert found.step_budget == 0  # Reached at the first evaluation.


def test_lower_is_better_targets_and_choice():
  curve = calibration.Curve(steps=(0, 5, 10), submission_time_s=(0, 1, 2),
                            values=(0.9, 0.3, 0.4))
  assert calibration.best(curve, higher_is_better=False) == (0.3, 5)
  assert calibration.first_reaching(curve, 0.35,
                                    higher_is_better=False) == (5, 1)


def test_choice_prefers_the_best_value_then_the_earlier_step():
  late, early, worse = (_run([0.1, 0.2, 0.9]), _run([0.1, 0.9, 0.9]),
                        _run([0.8]))
  assert calibration.choose([late, worse, early],
                            higher_is_better=True) is early
  never = _run([])
  with pytest.raises(calibration.CalibrationError, match='no search trial'):
    calibration.choose([never], higher_is_better=True)


def test_too_few_evaluated_seeds_set_no_target():
  seeds = [_run([0.8]), _run([]), _run([])]
  with pytest.raises(calibration.CalibrationError, match='only 1 of 3'):
    calibration.target_and_budget(seeds, higher_is_better=True,
                                  budget_margin=2.0)


TINY = dict(max_steps=10, eval_every=5, train_size=500, chunk_size=500,
            log_every=5, quiet=True)


def _calibrate(tmp_path, **overrides):
  settings = calibrate.Calibration(
      workload='fmnist_fc', candidates=('adamw', 'heavy_ball'),
      trials_per_candidate=1, **{'num_seeds': 3, **overrides})
  base_config = config_lib.RunConfig(
      workload='fmnist_fc', submission='adam', experiment_dir=str(tmp_path),
      **TINY)
  out = io.StringIO()
  record = calibrate.calibrate(settings, base_config, command='test', out=out,
                               fresh_processes=False)
  return record, out.getvalue()


def test_a_calibration_end_to_end_agrees_with_its_run_records(tmp_path):
  record, log = _calibrate(tmp_path)
  assert record == calibration.read(tmp_path / calibration.RECORD_FILE)
  assert len(record.search) == 2 and len(record.seeds) == 3
  # Recomputed from the run records alone.
  metric = 'validation/accuracy'
  search_best = {}
  for run in records.find_run_dirs(tmp_path / calibrate.SEARCH_DIR):
    read = records.read_run(run)
    assert read.summary.final_step == 10  # Trained on, whatever it reached.
    search_best[read.submission] = max(m.metrics[metric]
                                       for m in read.metrics)
  assert record.chosen_submission == max(search_best, key=search_best.get)
  seed_runs = [records.read_run(run) for run in
               records.find_run_dirs(tmp_path / calibrate.SEEDS_DIR)]
  assert len({run.meta.seed for run in seed_runs}) == 3
  assert all(run.meta.hparams == record.chosen_hparams for run in seed_runs)
  bests = [max(m.metrics[metric] for m in run.metrics) for run in seed_runs]
  assert record.target_value == statistics.median(bests)
  reached = [next(m for m in run.metrics if m.metrics[metric] >=
                  record.target_value) for run in seed_runs
             if max(m.metrics[metric] for m in run.metrics) >=
             record.target_value]
  assert record.step_budget == math.ceil(2.0 * max(m.step for m in reached))
  assert record.runtime_budget_s == math.ceil(
      2.0 * max(m.submission_time_s for m in reached))
  assert 'chosen: ' in log and 'seeds: 3 runs' in log

  # The same command again runs nothing and sets the same target.
  again, log = _calibrate(tmp_path)
  assert log.count('skipped: finished') == 5
  assert (again.target_value, again.step_budget) == (record.target_value,
                                                     record.step_budget)
  # Other settings are refused, naming the difference.
  with pytest.raises(cli.UserError, match='num_studies: 3 -> 4'):
    _calibrate(tmp_path, num_seeds=4)


def _main(capsys, *args):
  capsys.readouterr()
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as exit_:
      sys.exit(calibrate.main(calibrate.parse_flags([calibrate.PROGRAM,
                                                     *args])))
  return subprocess.CompletedProcess(args, exit_.value.code,
                                     *capsys.readouterr())


@pytest.mark.parametrize('args, words', [
    (('--workload=nope',), "unknown workload 'nope'"),
    ((), 'say which workload'),
    (('--workload=fmnist_fc', '--hparams={"learning_rate": 0.1}'),
     '--hparams not taken here'),
    (('--workload=fmnist_fc', '--candidates=adamw,nope'),
     "submission 'nope'"),
    (('--workload=fmnist_fc', '--budget_margin=0.5'), 'budget_margin'),
])
def test_bad_calibrations_are_refused_in_one_line(capsys, tmp_path, args,
                                                  words):
  out = _main(capsys, f'--experiment_dir={tmp_path}', *args)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and words in lines[0], out.stderr
  assert not (tmp_path / calibrate.SEARCH_DIR).exists()


def test_every_workload_names_where_its_target_comes_from():
  sources = {name: registry.get(name).target_source
             for name in registry.names()}
  assert sources['imagenet_resnet50'] is base.TargetSource.LITERATURE
  assert sources['wmt_transformer_preln'] is base.TargetSource.LITERATURE
  assert sources['cifar10_fc'] is base.TargetSource.PROVISIONAL
  for name, source in sources.items():
    committed = calibration.committed_path(name)
    assert (source is base.TargetSource.CALIBRATED) == committed.exists(), (
        name)
    if committed.exists():
      record = calibration.read(committed)
      workload = registry.get(name)
      assert (workload.target_value, workload.step_budget,
              workload.runtime_budget_s) == (record.target_value,
                                             record.step_budget,
                                             record.runtime_budget_s)
      assert str(pathlib.Path('workloads', 'calibrations', f'{name}.json')
                 ) in type(workload).__doc__
