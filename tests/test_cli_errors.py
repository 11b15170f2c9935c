"""Expected user errors end in one line and exit 2; a run's failure in one
line and exit 1; a finished run is never overwritten without --overwrite.

The table of errors runs each entry point's `parse_flags` and `main` in this
process (the same code `python -m` runs, without its second of imports);
one error of each kind, and each entry point, also runs as a subprocess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import subprocess
import sys
import textwrap

from absl.testing import flagsaver
import pytest

from harness import config as config_lib
from harness import list_workloads
from harness import records
from harness import run_directory
from harness import submission_runner
from scoring import main_job
from tests import commands
from tests import scoring_fixtures as fx

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = 'harness.submission_runner'
# A run small enough to train in seconds: no probes, evaluations at the ends.
TINY = ('--workload=fmnist_fc', '--submission=adam', '--max_steps=2',
        '--train_size=100', '--chunk_size=100', '--eval_every=100',
        '--curvature_every=0', '--nocurvature_at_events', '--quiet')


def _launch(program: str, *args: str) -> subprocess.CompletedProcess:
  return commands.run_module(program, *args)


def _in_process(module, capsys, *args: str) -> subprocess.CompletedProcess:
  """`python -m module args`, run here: its exit status and stderr."""
  capsys.readouterr()
  with flagsaver.flagsaver():
    with pytest.raises(SystemExit) as exit_:
      sys.exit(module.main(module.parse_flags([module.PROGRAM, *args])))
  return subprocess.CompletedProcess(args, exit_.value.code, '',
                                     capsys.readouterr().err)


def _error_line(out: subprocess.CompletedProcess, program: str,
                status: int = 2) -> str:
  """The one error line; checks the exit status and that no trace shows."""
  assert out.returncode == status, out.stderr[-3000:]
  assert 'Traceback' not in out.stderr, out.stderr[-3000:]
  lines = [line for line in out.stderr.splitlines()
           if line.startswith(f'{program}: error: ')]
  assert len(lines) == 1, out.stderr[-3000:]
  return lines[0]


def _tree(path: pathlib.Path) -> dict[str, str]:
  """Each record file under `path` (not the lock) by its sha256."""
  return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(path.rglob('*'))
          if p.is_file() and p.name != records.LOCK_FILE}


@pytest.mark.parametrize('args, words', [
    (('--workload=nope', '--submission=adam'),
     ('unknown workload', 'fmnist_fc')),
    (('--workload=fmnist_fc', '--submission=nope'),
     ('neither a baseline nor a .py file', 'adam_nobc')),
    (('--workload=fmnist_fc', '--submission=/no/such/file.py'),
     ('/no/such/file.py',)),
    (('--workload=fmnist_fc', '--submission=adam', '--hparams={bad'),
     ('--hparams', 'not valid JSON')),
    (('--workload=fmnist_fc', '--submission=adam', '--hparams=nofile.json'),
     ('nofile.json', 'neither inline JSON nor an existing file')),
    (('--workload=fmnist_fc', '--submission=adam', '--hparams=[1]'),
     ('must be a JSON object', 'list')),
    (('--workload=fmnist_fc', '--submission=adam',
      '--hparams={"lerning_rate": 1}'),
     ('unknown hyperparameters', 'lerning_rate', 'learning_rate')),
    (('--workload=fmnist_fc', '--submission=adam',
      '--search_space={"learning_rate": 3}'),
     ("'learning_rate' must be an object", 'feasible_points')),
    (('--workload=fmnist_fc', '--submission=adam', '--trial=3',
      '--search_space=[{"learning_rate": 0.1}]'),
     ('trial 3 is past the 1 points',)),
    (('--workload=fmnist_fc', '--submission=adam', '--max_steps=0'),
     ('max_steps must be positive',)),
    (('--workload=fmnist_fc', '--submission=adam', '--curvature_top_k=50'),
     ('--curvature_top_k', '--lanczos_iterations')),
    (('--workload=fmnist_fc', '--submission=adam', '--max_steps=ten'),
     ('--max_steps', 'ten', '--helpshort')),
    (('--workload=fmnist_fc', '--submission=adam', 'extra'),
     ("unexpected arguments ['extra']",)),
], ids=['workload', 'baseline', 'submission_file', 'hparams_json',
        'hparams_file', 'hparams_not_object', 'hparams_unknown',
        'search_space', 'search_space_trial', 'config_value', 'curvature',
        'flag_type', 'positional'])
def test_runner_user_error_is_one_line(tmp_path, capsys, args, words):
  out = _in_process(submission_runner, capsys, *args,
                    f'--experiment_dir={tmp_path}')
  line = _error_line(out, RUNNER)
  for word in words:
    assert word in line, (word, line)
  assert not any(tmp_path.iterdir())  # Refused before any file is written.
  verbose = _in_process(submission_runner, capsys, *args, '--verbose',
                        f'--experiment_dir={tmp_path}')
  assert verbose.returncode == 2
  # A flag absl cannot parse, or an argument that is no flag, has no
  # traceback to show: nothing ran.
  untraced = any(a in args for a in ('--max_steps=ten', 'extra'))
  assert ('Traceback' in verbose.stderr) is not untraced, verbose.stderr


def test_missing_flag_and_missing_data_from_the_command_line(tmp_path):
  line = _error_line(_launch(RUNNER, '--submission=adam'), RUNNER)
  assert '--workload' in line and '--helpshort' in line
  line = _error_line(_launch(
      RUNNER, '--workload=fmnist_fc', '--submission=adam',
      '--data_source=idx', f'--data_dir={tmp_path}/nowhere',
      f'--experiment_dir={tmp_path}'), RUNNER)
  assert f'{tmp_path}/nowhere' in line and 'apt-get install' in line


def test_a_finished_run_is_refused_and_left_as_it_was(tmp_path):
  run = fx.write_run(tmp_path, 'fmnist_fc', 'adam', status='budget_exhausted')
  before = _tree(run)
  line = _error_line(_launch(RUNNER, *TINY, f'--experiment_dir={tmp_path}',
                             '--noquiet'), RUNNER)
  assert 'holds a finished run' in line and '--overwrite' in line
  assert _tree(run) == before


def test_a_run_that_failed_in_set_up_does_not_block_the_rerun(tmp_path):
  run = fx.write_run(tmp_path, 'fmnist_fc', 'adam', status='error',
                     summary_overrides={'final_step': 0,
                                        'error': 'missing data',
                                        'error_kind': 'setup'})
  out = _launch(RUNNER, *TINY, f'--experiment_dir={tmp_path}')
  assert out.returncode == 0, out.stderr[-3000:]
  summary = records.read_run(run).summary
  assert (summary.status, summary.final_step) == (
      records.Status.BUDGET_EXHAUSTED, 2)


_RAISES = '''
    import optax

    def make_optimizer(hparams):
      def update(updates, state, params=None):
        raise FloatingPointError('update blew up')
      return optax.GradientTransformation(lambda p: optax.EmptyState(),
                                          update)
    '''


def test_a_failure_inside_the_update_is_one_line_and_exit_1(tmp_path,
                                                             capsys):
  source = tmp_path / 'raises.py'
  source.write_text(textwrap.dedent(_RAISES))
  args = (*TINY, f'--submission={source}', f'--experiment_dir={tmp_path}')
  line = _error_line(_launch(RUNNER, *args), RUNNER, status=1)
  run = records.run_dir(tmp_path, 'fmnist_fc', 'raises')
  assert 'FloatingPointError: update blew up' in line
  assert str(run) in line
  summary = records.read_run(run).summary
  assert summary.error_kind is records.ErrorKind.SUBMISSION
  verbose = _in_process(submission_runner, capsys, *args, '--verbose')
  assert verbose.returncode == 1
  assert 'Traceback' in verbose.stderr and 'update blew up' in verbose.stderr


@pytest.mark.parametrize('args, words', [
    (('--tier=huge',), ('--tier', 'huge')),
    (('extra',), ("['extra']",)),
], ids=['tier', 'positional'])
def test_list_workloads_user_error_is_one_line(capsys, args, words):
  line = _error_line(_in_process(list_workloads, capsys, *args),
                     list_workloads.PROGRAM)
  for word in words:
    assert word in line, (word, line)


@pytest.mark.parametrize('program, args, words', [
    ('harness.list_workloads', ('--tier=huge',), ('--tier', 'huge')),
    ('scoring.demo', ('--steps=0',), ('max_steps must be positive',)),
    ('scoring.demo', ('--submission=nope',), ('adam_nobc',)),
], ids=['list_tier', 'demo_steps', 'demo_submission'])
def test_other_entry_points_end_user_errors_in_one_line(tmp_path, program,
                                                        args, words):
  if program == 'scoring.demo':  # Its flags clash with the runner's here.
    args = (*args, f'--experiment_dir={tmp_path}')
  line = _error_line(_launch(program, *args), program)
  for word in words:
    assert word in line, (word, line)


# ---- When a launch may replace what the run directory holds ----

CONFIG = config_lib.RunConfig(workload='fmnist_fc', submission='adam')


def _decide(path: pathlib.Path, **changes) -> bool:
  meta = records.read_json(path / records.META_FILE, records.Meta)
  return run_directory.decide(path, dataclasses.replace(CONFIG, **changes),
                              meta.submission.source_sha256)


def _errored(tmp_path, step: int, kind: str) -> pathlib.Path:
  return fx.write_run(tmp_path, 'fmnist_fc', 'adam', status='error',
                      summary_overrides={'final_step': step, 'error': 'x',
                                         'error_kind': kind})


@pytest.mark.parametrize('kind', ['setup', 'submission'])
def test_an_error_at_step_0_starts_afresh_whatever_the_flags(tmp_path, kind):
  path = _errored(tmp_path, 0, kind)
  assert _decide(path, seed=7, resume=False) is False


def test_a_failed_restore_beside_a_checkpoint_resumes_it(tmp_path):
  path = _errored(tmp_path, 0, 'setup')
  meta = json.loads((path / records.META_FILE).read_text())
  meta['config'] = json.loads(json.dumps(dataclasses.asdict(CONFIG)))
  (path / records.META_FILE).write_text(json.dumps(meta))
  (path / records.CHECKPOINT_DIR / '30').mkdir(parents=True)
  assert _decide(path) is True
  with pytest.raises(run_directory.RunDirectoryError, match='--resume'):
    _decide(path, resume=False)


def test_the_demo_replaces_only_its_own_previous_run(tmp_path):
  job = main_job.MainJob(experiment_dir=str(tmp_path))
  assert job.run_config().overwrite is False  # Nothing there yet.
  config = job.run_config()
  path = fx.write_run(tmp_path, config.workload, config.submission,
                      status='budget_exhausted',
                      config=json.loads(json.dumps(
                          dataclasses.asdict(config))))
  assert job.run_config().overwrite is True
  # A run of other settings is kept: the launch would refuse it.
  assert dataclasses.replace(job, steps=10).run_config().overwrite is False
  assert records.read_run(path).summary.status is (
      records.Status.BUDGET_EXHAUSTED)
