"""A suite of trials from one command: the job list, its launchers, resume.

`harness.jobs` makes the numbered job list; `harness.suite` runs it here,
one index alone, or through submitit. Runs are tiny (fmnist_fc, a few
steps) so that the launchers, not the training, are what is tested.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from absl.testing import flagsaver
import pytest

from harness import config as config_lib
from harness import jobs as jobs_lib
from harness import records
from harness import study
from harness import suite
from harness import suite_runs
from submissions import hparams as hparams_lib
from submissions import loading
from tests import commands

FIXTURES = pathlib.Path(__file__).resolve().parent / 'algoperf_submissions'
NADAMW_SPACE = str(FIXTURES / 'nadamw_search_space.json')
# Few steps on a small pool: compilation is most of each run.
TINY_RUNS = ('--max_steps=4', '--eval_every=2', '--train_size=500',
             '--chunk_size=500', '--curvature_every=0',
             '--nocurvature_at_events', '--quiet')
SUITE = ('--submissions=adam,heavy_ball', '--workloads=fmnist_fc',
         '--num_studies=1', '--num_tuning_trials=2')


def _spec(**overrides) -> jobs_lib.SuiteSpec:
  settings = dict(submissions=('adam', 'heavy_ball'),
                  workloads=('fmnist_fc', 'fmnist_fc_mse'), num_studies=2,
                  num_trials=2)
  return jobs_lib.SuiteSpec(**{**settings, **overrides})


def _run_suite(capsys, *args: str, module=suite
               ) -> subprocess.CompletedProcess:
  """`python -m harness.suite args` (or `module`'s), run in this process."""
  capsys.readouterr()
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as exit_:
      sys.exit(module.main(module.parse_flags([module.PROGRAM, *args])))
  captured = capsys.readouterr()
  return subprocess.CompletedProcess(args, exit_.value.code, captured.out,
                                     captured.err)


def _runs(experiment_dir: pathlib.Path) -> dict[str, tuple]:
  """What each trial ran and ended with, by its path: every field that does
  not depend on the machine's speed."""
  found = {}
  for path in records.find_run_dirs(experiment_dir):
    run = records.read_run(path)
    found[str(path.relative_to(experiment_dir))] = (
        run.meta.hparams, run.meta.seed, run.summary.status,
        run.summary.final_step, run.summary.steps_to_target,
        run.summary.final_metrics)
  return found


# ---- The job list ----


def test_job_list_is_numbered_and_the_same_for_the_same_settings():
  first, again = jobs_lib.expand(_spec()), jobs_lib.expand(_spec())
  assert first == again and len(first) == 2 * 2 * 2 * 2
  assert [job.index for job in first] == list(range(16))
  assert [(j.submission, j.workload, j.study, j.trial) for j in first[:5]] == [
      ('adam', 'fmnist_fc', 0, 0), ('adam', 'fmnist_fc', 0, 1),
      ('adam', 'fmnist_fc', 1, 0), ('adam', 'fmnist_fc', 1, 1),
      ('adam', 'fmnist_fc_mse', 0, 0)]
  # Each trial of a study has its own seed, and each study its own points;
  # every submission and workload meets the same seeds (paired runs).
  seeds = {(j.study, j.trial): set() for j in first}
  for job in first:
    seeds[(job.study, job.trial)].add(job.seed)
  assert all(len(s) == 1 for s in seeds.values())
  assert len({s.pop() for s in seeds.values()}) == 4
  assert first[0].hparams != first[2].hparams
  space = hparams_lib.SearchSpace.from_json(
      str(jobs_lib.default_search_space('adam')))
  for job in first[:4]:
    for name, dimension in space.dimensions.items():
      if isinstance(dimension, hparams_lib.Range):
        assert dimension.low <= job.hparams[name] <= dimension.high


def test_a_list_of_points_is_sampled_without_replacement_per_study():
  spec = _spec(submissions=(str(FIXTURES / 'nadamw.py'),),
               workloads=('fmnist_fc',), num_studies=3, num_trials=2,
               search_space=NADAMW_SPACE)
  listed = [json.dumps(p, sort_keys=True)
            for p in json.loads(pathlib.Path(NADAMW_SPACE).read_text())]
  by_study = {}
  for job in jobs_lib.expand(spec):
    by_study.setdefault(job.study, []).append(
        json.dumps(hparams_lib.to_jsonable(job.hparams), sort_keys=True))
  for points in by_study.values():
    assert sorted(points) == sorted(listed)  # Both points, none twice.
  with pytest.raises(jobs_lib.JobsError, match='without replacement'):
    jobs_lib.expand(dataclasses.replace(spec, num_trials=3))


def test_a_studys_points_follow_its_recorded_seed():
  spec = _spec(submissions=('adam',), workloads=('fmnist_fc',))
  drawn = jobs_lib.expand(spec)
  recorded = jobs_lib.expand(spec, study_seeds={('fmnist_fc', 'adam', 0):
                                                drawn[2].study_seed})
  assert recorded[0].hparams == drawn[2].hparams  # Study 0 takes 1's seed.
  assert recorded[2].hparams == drawn[2].hparams


def test_tiers_and_names_of_workloads():
  smoke = jobs_lib.workload_names('tier:smoke')
  assert 'fmnist_fc' in smoke and 'imagenet_resnet50' not in smoke
  assert jobs_lib.workload_names('fmnist_fc, fmnist_cnn') == (
      'fmnist_fc', 'fmnist_cnn')
  with pytest.raises(jobs_lib.JobsError, match='known tiers: smoke'):
    jobs_lib.workload_names('tier:huge')
  with pytest.raises(jobs_lib.JobsError, match='known workloads'):
    jobs_lib.workload_names('fmnist_fc,nope')


def test_self_tuning_is_one_trial_without_hyperparameters(tmp_path):
  source = tmp_path / 'tunes_itself.py'
  source.write_text(
      'import optax\n'
      'def make_optimizer(hparams):\n'
      '  assert hparams is None\n'
      '  return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)\n')
  spec = _spec(submissions=(str(source),), workloads=('fmnist_fc',),
               num_trials=5, ruleset='self')
  job_list = jobs_lib.expand(spec)
  assert [(j.study, j.trial, dict(j.hparams)) for j in job_list] == [
      (0, 0, {}), (1, 0, {})]
  assert config_lib.TuningRuleset.SELF.budget_factor == 1.5
  with pytest.raises(jobs_lib.JobsError, match='takes no search space'):
    _spec(ruleset='self', search_space=NADAMW_SPACE)
  with pytest.raises(jobs_lib.JobsError, match='does not load as self'):
    jobs_lib.expand(_spec(submissions=('adam',), ruleset='self'))


@pytest.mark.parametrize('args, words', [
    (('--workloads=tier:huge',), ('unknown tier',)),
    (('--workloads=fmnist_fc', '--job_index=2'),
     ('--job_index=2 is out of range', '2 jobs, 0 to 1')),
    (('--workloads=fmnist_fc', '--search_space={"lr": {"min": 1, "max": 2}}'),
     ("unknown hyperparameters ['lr']",)),
    (('--workloads=fmnist_fc', '--trial=1'), ('--trial', 'not taken here')),
    (('--workload=fmnist_fc',), ('--workload not taken here but by '
                                  'harness.study',)),
])
def test_bad_suites_are_refused_in_one_line(capsys, tmp_path, args, words):
  out = _run_suite(capsys, '--submissions=adam', '--num_tuning_trials=2',
                   f'--experiment_dir={tmp_path}', *args)
  assert out.returncode == 2, out.stderr
  line, = [line for line in out.stderr.splitlines()
           if line.startswith('harness.suite: error: ')]
  for word in words:
    assert word in line, line
  assert not (tmp_path / suite.SUITE_FILE).exists()


# ---- Running it ----


def test_suite_runs_resumes_and_fans_out_by_index(capsys, tmp_path):
  whole, by_index = tmp_path / 'whole', tmp_path / 'by_index'
  out = _run_suite(capsys, *SUITE, *TINY_RUNS, f'--experiment_dir={whole}')
  assert out.returncode == 0, out.stderr
  assert out.stdout.count('budget_exhausted at step 4') == 4, out.stdout
  assert 'python -m scoring.report --experiment_dirs=' in out.stdout
  listed = _run_suite(capsys, *SUITE, *TINY_RUNS, f'--experiment_dir={whole}',
                      '--list_jobs').stdout.splitlines()
  assert [line.split('\t')[0] for line in listed] == ['0', '1', '2', '3']
  for index in range(4):
    assert _run_suite(capsys, *SUITE, *TINY_RUNS,
                      f'--experiment_dir={by_index}',
                      f'--job_index={index}').returncode == 0
  assert _runs(whole) == _runs(by_index) and len(_runs(whole)) == 4
  job_list = jobs_lib.expand(jobs_lib.SuiteSpec(
      ('adam', 'heavy_ball'), ('fmnist_fc',), num_trials=2))
  study = records.read_json(jobs_lib.study_path(whole, job_list[0]),
                            jobs_lib.StudyRecord)
  assert study.seed == job_list[0].study_seed
  assert study.points == tuple(hparams_lib.to_jsonable(job.hparams)
                               for job in job_list[:2])

  # A rerun skips what finished, and reruns a trial killed with nothing to
  # resume from, keeping its old directory aside.
  killed = whole / 'fmnist_fc' / 'heavy_ball' / 'study_0' / 'trial_1'
  (killed / records.SUMMARY_FILE).unlink()
  again = _run_suite(capsys, *SUITE, *TINY_RUNS, f'--experiment_dir={whole}')
  assert again.returncode == 0, again.stderr
  assert again.stdout.count('skipped: finished') == 3, again.stdout
  assert again.stdout.count('budget_exhausted at step 4') == 1
  aside = list((whole / suite.ASIDE_DIR).rglob('trial_1.*'))
  assert len(aside) == 1 and (aside[0] / records.META_FILE).exists()
  assert _runs(whole) == _runs(by_index)  # .aside/ is not scored.

  other = _run_suite(capsys, *SUITE, *TINY_RUNS, f'--experiment_dir={whole}',
                     '--num_studies=2')
  assert other.returncode == 2
  assert 'suite.num_studies: 1 -> 2' in other.stderr


def test_an_edited_search_space_is_another_suite(capsys, tmp_path):
  space = tmp_path / 'space.json'
  space.write_text('{"learning_rate": {"min": 1e-4, "max": 1e-3, '
                   '"scaling": "log"}}')
  args = ('--submissions=adam', '--workloads=fmnist_fc',
          f'--search_space={space}', f'--experiment_dir={tmp_path / "runs"}')
  base = suite_runs.settings_record(
      jobs_lib.SuiteSpec(('adam',), ('fmnist_fc',), search_space=str(space)),
      config_lib.RunConfig(workload='', submission=''))
  suite_runs.check_settings(tmp_path / 'runs', base)
  space.write_text('{"learning_rate": {"min": 1e-3, "max": 1e-2, '
                   '"scaling": "log"}}')
  out = _run_suite(capsys, *args, *TINY_RUNS)
  assert out.returncode == 2
  assert 'search_space_sha256' in out.stderr


def test_submitit_runs_the_same_trials(capsys, tmp_path):
  """submitit's local executor (a process a job, as SLURM's array tasks
  are) stands in for SLURM: the calls are pickled and run elsewhere."""
  here, through = tmp_path / 'here', tmp_path / 'submitit'
  args = ('--submissions=adam', '--workloads=fmnist_fc',
          '--num_tuning_trials=2', *TINY_RUNS)
  assert _run_suite(capsys, *args,
                    f'--experiment_dir={here}').returncode == 0
  out = commands.run_module('harness.suite', *args,
                            f'--experiment_dir={through}',
                            '--launcher=slurm', '--submitit_cluster=local')
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.count('budget_exhausted at step 4') == 2, out.stdout
  assert _runs(here) == _runs(through)


def test_a_baselines_search_space_is_found_beside_it():
  path = jobs_lib.default_search_space('adam')
  assert path.name == 'adam_search_space.json' and path.exists()
  assert loading.submission_name(str(FIXTURES / 'nadamw.py')) == 'nadamw'


def test_a_study_is_a_suite_of_one_submission_and_workload(capsys, tmp_path):
  args = ('--workload=fmnist_fc', '--submission=heavy_ball',
          '--num_studies=2', '--num_tuning_trials=3',
          f'--experiment_dir={tmp_path}', '--list_jobs')
  listed = _run_suite(capsys, *args, module=study).stdout.splitlines()
  suite_listed = _run_suite(
      capsys, '--workloads=fmnist_fc', '--submissions=heavy_ball',
      *args[2:]).stdout.splitlines()
  assert listed == suite_listed and len(listed) == 6
  refused = _run_suite(capsys, '--workloads=fmnist_fc',
                       '--submission=heavy_ball', module=study)
  assert refused.returncode == 2
  assert ('harness.study: error: --workloads not taken here but by '
          'harness.suite') in refused.stderr


def _start_suite(*args: str) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, '-m', 'harness.suite', *args], cwd=commands.ROOT,
      env=commands.environment(), start_new_session=True,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(path: pathlib.Path, process: subprocess.Popen) -> None:
  deadline = time.monotonic() + 240
  while not path.exists():
    assert process.poll() is None and time.monotonic() < deadline
    time.sleep(0.2)


_LONG_TRIALS = ('--submissions=adam', '--workloads=fmnist_fc',
                '--max_steps=400', '--eval_every=200', '--train_size=500',
                '--chunk_size=500', '--curvature_every=0',
                '--nocurvature_at_events', '--quiet')


def test_sigterm_to_the_suite_checkpoints_its_job_and_a_rerun_resumes_it(
    tmp_path):
  """A scheduler's SIGTERM reaches the suite, which passes it to the job's
  process: the trial checkpoints, no other job starts, and the rerun
  continues the trial from its checkpoint."""
  args = (*_LONG_TRIALS, '--num_tuning_trials=2',
          f'--experiment_dir={tmp_path}')
  first = tmp_path / 'fmnist_fc' / 'adam' / 'study_0' / 'trial_0'
  process = _start_suite(*args)
  try:
    _wait_for(first / records.METRICS_FILE, process)  # Step 0 evaluated.
    process.send_signal(signal.SIGTERM)  # The suite alone, not its group.
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
  finally:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
  summary = records.read_json(first / records.SUMMARY_FILE, records.Summary)
  assert summary.status is records.Status.INTERRUPTED
  assert not (first.parent / 'trial_1').exists()
  again = commands.run_module('harness.suite', *args)
  assert again.returncode == 0, again.stderr[-3000:]
  resumed = records.read_json(first / records.SUMMARY_FILE, records.Summary)
  assert resumed.status is records.Status.BUDGET_EXHAUSTED
  assert resumed.resumed_at_steps == (summary.final_step,)


def test_a_suite_killed_midway_reruns_only_its_unfinished_trial(tmp_path):
  """kill -9 of the suite and its job's process while the second of two
  trials trains; the rerun runs that trial alone, its old directory kept
  aside."""
  args = (*_LONG_TRIALS, '--num_tuning_trials=2',
          f'--experiment_dir={tmp_path}')
  second = tmp_path / 'fmnist_fc' / 'adam' / 'study_0' / 'trial_1'
  process = _start_suite(*args)
  try:
    _wait_for(second / records.META_FILE, process)
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  first = tmp_path / 'fmnist_fc' / 'adam' / 'study_0' / 'trial_0'
  assert (first / records.SUMMARY_FILE).exists()
  assert not (second / records.SUMMARY_FILE).exists()
  again = commands.run_module('harness.suite', *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count('skipped: finished') == 1, again.stdout
  assert again.stdout.count('budget_exhausted at step 400') == 1
  assert len(list(records.find_run_dirs(tmp_path))) == 2
  assert len(list((tmp_path / suite.ASIDE_DIR).rglob('trial_1.*'))) == 1


@pytest.mark.slow
def test_two_by_two_by_two_by_two_to_a_leaderboard(capsys, tmp_path):
  """2 submissions × 2 workloads × 2 studies × 2 trials, run here, one
  index at a time and through submitit: the same trials, scored."""
  from scoring import leaderboard  # pylint: disable=g-import-not-at-top
  args = ('--submissions=adam,heavy_ball', '--workloads=fmnist_fc,fmnist_fc_mse',
          '--num_studies=2', '--num_tuning_trials=2', *TINY_RUNS)
  here, by_index, through = (tmp_path / name for name in
                             ('here', 'by_index', 'submitit'))
  assert _run_suite(capsys, *args, f'--experiment_dir={here}').returncode == 0
  for index in range(16):
    assert _run_suite(capsys, *args, f'--experiment_dir={by_index}',
                      f'--job_index={index}').returncode == 0
  out = commands.run_module('harness.suite', *args,
                            f'--experiment_dir={through}',
                            '--launcher=slurm', '--submitit_cluster=local',
                            timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _runs(here) == _runs(by_index) == _runs(through)
  assert len(_runs(here)) == 16
  board = leaderboard.compute_leaderboard([here])
  group, = board.groups
  assert set(group.submissions) == {'adam', 'heavy_ball'}
  assert {w.name for w in group.workloads} == {'fmnist_fc', 'fmnist_fc_mse'}
  assert len(group.standings) == 2
