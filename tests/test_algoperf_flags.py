"""AlgoPerf's command lines run here: its flag names, its search spaces.

Each case parses a command line with `submission_runner.parse_flags` and
builds its run with `config_from_flags`, in this process.
"""

from __future__ import annotations

import json
import os
import sys

from absl.testing import flagsaver
import pytest

from harness import config as config_lib
from harness import submission_runner
from submissions import hparams as hparams_lib

PROGRAM = submission_runner.PROGRAM
BASE = ('--workload=fmnist_fc', '--submission=adam')
# AlgoPerf's list-of-points form, as its baselines ship it.
POINTS = [{'learning_rate': 1e-3, 'beta1': 0.9},
          {'learning_rate': 3e-3, 'beta1': 0.8},
          {'learning_rate': 1e-2, 'beta1': 0.95}]
# AlgoPerf's min/max and feasible_points form.
RANGES = {'learning_rate': {'min': 1e-4, 'max': 1e-2, 'scaling': 'log'},
          'beta1': {'feasible_points': [0.8, 0.9]}}


def _config(*args: str) -> config_lib.RunConfig:
  with flagsaver.flagsaver():
    submission_runner.parse_flags([PROGRAM, *args])
    return submission_runner.config_from_flags()


def _refused(capsys, *args: str) -> str:
  """The one error line of a refused command line (exit 2, no traceback)."""
  capsys.readouterr()
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as exit_:
      sys.exit(submission_runner.main(
          submission_runner.parse_flags([PROGRAM, *args])))
  assert exit_.value.code == 2
  err = capsys.readouterr().err
  assert 'Traceback' not in err, err
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith(f'{PROGRAM}: error: '), err
  return lines[0]


@pytest.fixture(name='points_file')
def _points_file(tmp_path):
  path = tmp_path / 'tuning_search_space.json'
  path.write_text(json.dumps(POINTS))
  return str(path)


@pytest.mark.parametrize('flag', ['search_space', 'tuning_search_space',
                                  'hparams'])
@pytest.mark.parametrize('trial', range(len(POINTS)))
def test_list_of_points_gives_point_of_trial(points_file, flag, trial):
  got = _config(*BASE, f'--{flag}={points_file}', f'--trial={trial}')
  assert got.hparams == POINTS[trial]
  assert got.trial == trial


@pytest.mark.parametrize('flag', ['search_space', 'hparams'])
def test_ranges_give_the_same_point_by_either_flag(flag):
  space = hparams_lib.SearchSpace.from_json(RANGES)
  got = _config(*BASE, f'--{flag}={json.dumps(RANGES)}', '--study=2',
                '--trial=5')
  assert got.hparams == space.point(2, 5)
  assert got.hparams != space.point(2, 4)
  assert got.hparams['beta1'] in (0.8, 0.9)


def test_hparams_override_the_point_of_the_search_space(points_file):
  got = _config(*BASE, f'--search_space={points_file}', '--trial=1',
                '--hparams={"beta1": 0.5}')
  assert got.hparams == {**POINTS[1], 'beta1': 0.5}


@pytest.mark.parametrize('flag', ['search_space', 'hparams'])
def test_trial_past_the_points_is_one_line(capsys, tmp_path, points_file,
                                           flag):
  line = _refused(capsys, *BASE, f'--{flag}={points_file}', '--trial=3',
                  f'--experiment_dir={tmp_path}/runs')
  for words in ('trial 3 is past the 3 points', f'--{flag}',
                '0 to 2', 'trial_1 to trial_3'):
    assert words in line, (words, line)
  assert not (tmp_path / 'runs').exists()


def test_points_that_name_different_hyperparameters_are_refused(capsys):
  line = _refused(capsys, *BASE,
                  '--search_space=[{"learning_rate": 0.1}, {"lr": 0.2}]')
  assert 'point 1' in line and "['lr']" in line, line


def test_aliases_set_our_flags(points_file):
  ours = _config('--workload=fmnist_fc', '--submission=adam',
                 f'--search_space={points_file}', '--trial=2')
  theirs = _config('--workload=fmnist_fc', '--submission_path=adam',
                   f'--tuning_search_space={points_file}', '--trial=2')
  assert theirs == ours
  assert theirs.submission == 'adam' and theirs.hparams == POINTS[2]


def test_a_flag_and_its_alias_may_agree(points_file):
  got = _config('--workload=fmnist_fc', '--submission=adam',
                '--submission_path=adam', f'--search_space={points_file}',
                f'--tuning_search_space={points_file}')
  assert got.submission == 'adam' and got.hparams == POINTS[0]


@pytest.mark.parametrize('args, words', [
    (('--submission=adam', '--submission_path=gd'),
     ('--submission_path=gd', '--submission=adam')),
    (('--submission_path', 'gd', '--submission=adam'),
     ('--submission_path=gd', '--submission=adam')),
    (('--submission=adam', '--search_space=[{"a": 1}]',
      '--tuning_search_space=[{"a": 2}]'),
     ('--tuning_search_space', '--search_space')),
], ids=['equals', 'space_separated', 'search_space'])
def test_a_flag_and_its_alias_with_different_values_are_refused(
    capsys, args, words):
  line = _refused(capsys, '--workload=fmnist_fc', *args)
  for word in (*words, 'give one'):
    assert word in line, (word, line)


def test_experiment_name_joins_experiment_dir(tmp_path):
  got = _config(*BASE, f'--experiment_dir={tmp_path}',
                '--experiment_name=baseline')
  assert got.experiment_dir == os.path.join(str(tmp_path), 'baseline')
  assert _config(*BASE, f'--experiment_dir={tmp_path}').experiment_dir == (
      str(tmp_path))


@pytest.mark.parametrize('name', ['/abs', '../up', ''])
def test_experiment_name_outside_experiment_dir_is_refused(capsys, name):
  line = _refused(capsys, *BASE, f'--experiment_name={name}')
  assert '--experiment_name' in line and 'inside' in line, line


@pytest.mark.parametrize('args, words', [
    (('--hparams={"learning_rate": 0.1}',), ('--hparams',)),
    (('--search_space=[{"learning_rate": 0.1}]',), ('--search_space',)),
    (('--tuning_search_space=[{"learning_rate": 0.1}]',),
     ('--search_space',)),
], ids=['hparams', 'search_space', 'tuning_search_space'])
def test_self_tuning_refuses_hyperparameters(capsys, args, words):
  line = _refused(capsys, *BASE, '--tuning_ruleset=self', *args)
  for word in ('--tuning_ruleset=self', *words):
    assert word in line, (word, line)


def test_self_tuning_runs_on_the_defaults():
  got = _config(*BASE, '--tuning_ruleset=self')
  assert got.hparams == {}


def test_external_is_the_default_ruleset(points_file):
  assert _config(*BASE, '--tuning_ruleset=external',
                 f'--search_space={points_file}') == _config(
                     *BASE, f'--search_space={points_file}')


def test_num_tuning_trials_is_accepted_and_bounds_trial(capsys):
  assert _config(*BASE, '--num_tuning_trials=5', '--trial=4').trial == 4
  line = _refused(capsys, *BASE, '--num_tuning_trials=5', '--trial=5')
  for word in ('--trial=5', '--num_tuning_trials=5', 'trial_1',
               '--trial=0 to --trial=4'):
    assert word in line, (word, line)


def test_help_says_how_trials_map_to_algoperf():
  help_text = submission_runner.flags.FLAGS['num_tuning_trials'].help
  assert '--trial' in help_text and 'trial_1' in help_text
  assert 'trial_{i+1}' in submission_runner.flags.FLAGS['trial'].help
