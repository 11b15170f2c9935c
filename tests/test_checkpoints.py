"""Orbax checkpoints of a run: round trips, retention, atomicity, layout."""

from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harness import checkpoints as checkpoints_lib
from harness import clock as clock_lib
from harness import mesh as mesh_lib
from submissions import loading
from submissions import preconditioner_file
from workloads import base
from tests import commands
import workloads

REPO = pathlib.Path(__file__).resolve().parents[1]
BOOKKEEPING = {'step': 7, 'batches_drawn': 7, 'submission_time_s': 1.25,
               'times': {'first_step_s': 0.5}, 'resumed_at_steps': [3],
               'milestones': {'solution_step': None}, 'probe': None}

# ---- Two devices, and the import cost, in a fresh process ----

_TWO_DEVICE_SCRIPT = textwrap.dedent('''
    import pathlib, sys
    import jax, numpy as np
    import harness.runner  # Everything a run imports, and not orbax.
    from harness import checkpoints, mesh
    assert jax.device_count() == 2, jax.devices()
    directory = pathlib.Path(sys.argv[1])
    ckpt = checkpoints.Checkpoints(directory)
    assert ckpt.latest_step() is None
    assert 'orbax' not in sys.modules, 'orbax imported before it is used'
    parallel = mesh.DataParallel.over_all_devices()
    split = parallel.examples_batch
    state = {'replicated': parallel.replicate(np.arange(6.0)),
             'split': jax.device_put(np.arange(8, dtype=np.int32), split)}
    ckpt.save(1, state, {'step': 1})
    like = {'replicated': parallel.replicate(np.zeros(6)),
            'split': jax.device_put(np.zeros(8, np.int32), split)}
    restored, _ = ckpt.restore(1, like)
    ckpt.close()
    for name in state:
      assert restored[name].sharding == like[name].sharding, name
      assert len(restored[name].sharding.device_set) == 2, name
      np.testing.assert_array_equal(restored[name], state[name])
    print('OK')
''')


@pytest.fixture(scope='module', autouse=True)
def two_device_run(tmp_path_factory):
  """Starts the two-device check in a subprocess while the others run.

  The device count is fixed when JAX starts, and only a fresh process
  shows whether orbax is imported before it is needed.
  """
  env = commands.forced_devices(2)
  directory = tmp_path_factory.mktemp('two_devices') / 'checkpoints'
  proc = subprocess.Popen(
      [sys.executable, '-c', _TWO_DEVICE_SCRIPT, str(directory)], cwd=REPO,
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  yield proc
  if proc.poll() is None:
    proc.kill()
  proc.communicate()


def test_two_devices_keep_their_shardings_and_import_orbax_lazily(
    two_device_run):
  out, _ = two_device_run.communicate(timeout=300)
  assert two_device_run.returncode == 0, out
  assert out.strip().endswith('OK'), out


# ---- Real optimizer states ----


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  workload = workloads.get('fmnist_fc')
  params, model_state = workload.init_model_fn(jax.random.PRNGKey(0))
  parallel = mesh_lib.DataParallel.over_all_devices()
  path = tmp_path_factory.mktemp('frozen') / 'preconditioner.npz'
  preconditioner_file.save(str(path), jax.tree.map(
      lambda p: np.full(p.shape, 0.5, p.dtype), params))
  return workload, parallel, (params, model_state), str(path)


def _initial_state(setup, name: str):
  """(params, optimizer state, model state) as the runner initialises it."""
  workload, parallel, (params, model_state), path = setup
  hparams = {'preconditioner_path': path} if name == 'frozen_adam' else None
  submission = loading.load(name, hparams)
  params = parallel.replicate(params)
  opt_state = parallel.place(submission.init_optimizer_state(
      workload, params, parallel.replicate(model_state),
      jax.random.PRNGKey(1)))
  return submission, (params, opt_state, parallel.replicate(model_state))


def _scrambled(tree, seed: int = 0):
  """`tree` with random values in every array, same shardings and dtypes.

  Zeros (Adam's initial moments) would round-trip even if bits were lost.
  """
  leaves, treedef = jax.tree.flatten(tree)
  rng = np.random.default_rng(seed)

  def scramble(x):
    values = (rng.integers(0, 1000, x.shape) if
              jnp.issubdtype(x.dtype, jnp.integer) else
              rng.standard_normal(x.shape))
    return jax.device_put(values.astype(x.dtype), x.sharding)
  return jax.tree.unflatten(treedef, [scramble(x) for x in leaves])


def _assert_bitwise(restored, saved) -> None:
  assert jax.tree.structure(restored) == jax.tree.structure(saved)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(saved)):
    assert type(got) is type(want)
    if isinstance(want, (jax.Array, np.ndarray)):
      assert got.dtype == want.dtype and got.shape == want.shape
      assert np.asarray(got).tobytes() == np.asarray(want).tobytes()
    else:
      assert got == want


def _assert_shardings(restored, like) -> None:
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(like)):
    if isinstance(want, (jax.Array, jax.ShapeDtypeStruct)):
      assert got.sharding == want.sharding


@pytest.mark.parametrize('name', ['adam', 'heavy_ball', 'rmsprop',
                                  'frozen_adam'])
def test_baseline_state_round_trips_bitwise(setup, tmp_path, name):
  _, like = _initial_state(setup, name)
  state = _scrambled(like)
  with checkpoints_lib.Checkpoints(tmp_path / 'checkpoints') as ckpt:
    ckpt.save(7, {'state': state, 'warm': {}}, BOOKKEEPING)
    assert ckpt.latest_step() == 7
    restored, bookkeeping = ckpt.restore(7, {'state': like, 'warm': {}})
  _assert_bitwise(restored['state'], state)
  _assert_shardings(restored['state'], like)
  assert bookkeeping == BOOKKEEPING


def test_shape_dtype_structs_stand_for_arrays(setup, tmp_path):
  _, like = _initial_state(setup, 'adam')
  state = _scrambled(like, seed=1)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      like)
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(3, state, {})
    restored, _ = ckpt.restore(3, abstract)
  _assert_bitwise(restored, state)
  _assert_shardings(restored, like)


def test_empty_nodes_scalars_host_arrays_and_special_floats(tmp_path):
  parallel = mesh_lib.DataParallel.over_all_devices()
  special = np.array([-0.0, np.nan, np.inf, 1e-45, -np.inf], np.float32)
  state = {
      'model_state': {}, 'warm': None, 'empty': optax.EmptyState(),
      'count': parallel.replicate(np.int32(5)), 'python': (3, 0.5, True),
      'host': np.arange(4, dtype=np.int8),
      'special': parallel.replicate(special),
      'bf16': parallel.replicate(jnp.asarray([1.5, -2.25], jnp.bfloat16))}
  like = dict(state, python=(0, 0.0, False),
              count=parallel.replicate(np.int32(0)))
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(1, state, {})
    restored, _ = ckpt.restore(1, like)
  _assert_bitwise(restored, state)
  _assert_shardings(restored, like)


def test_state_without_arrays(tmp_path):
  state = {'warm': None, 'model_state': {}, 'step': 4}
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(2, state, {'step': 2})
    assert ckpt.restore(2, dict(state, step=0)) == (state, {'step': 2})


def test_python_scalar_saved_as_array_comes_back_as_saved(tmp_path):
  # A submission's initial Python counter is an array after a jitted step.
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(1, {'count': jnp.int32(9)}, {})
    restored, _ = ckpt.restore(1, {'count': 0})
  assert int(restored['count']) == 9


# ---- Retention and atomicity ----


def _small_state(value: float):
  return {'w': jnp.full((3,), float(value)),
          'count': jnp.int32(int(value))}


def test_keep_two_keeps_the_last_two(tmp_path):
  with checkpoints_lib.Checkpoints(tmp_path, keep=2) as ckpt:
    for step in (1, 2, 3, 4):
      ckpt.save(step, _small_state(step), {'step': step})
    assert ckpt.latest_step() == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == [
        '3', '4']
    with pytest.raises(FileNotFoundError, match=r'step 2 .*\[3, 4\]'):
      ckpt.restore(2, _small_state(0))
    restored, bookkeeping = ckpt.restore(3, _small_state(0))
  assert bookkeeping == {'step': 3}
  np.testing.assert_array_equal(restored['w'], [3.0, 3.0, 3.0])
  # A new launch sees what the last one kept.
  assert checkpoints_lib.Checkpoints(tmp_path, keep=2).latest_step() == 4


def test_half_written_checkpoint_is_invisible(tmp_path):
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(1, _small_state(1), {'step': 1})
    gone = jnp.zeros(3)
    gone.delete()  # Fails while orbax writes, after it made its directory.
    with pytest.raises(RuntimeError):
      ckpt.save(2, {'w': gone, 'count': jnp.int32(2)}, {'step': 2})
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith('2')]
    assert leftovers and not (tmp_path / '2').exists()
    assert ckpt.latest_step() == 1
  relaunched = checkpoints_lib.Checkpoints(tmp_path)
  assert relaunched.latest_step() == 1
  assert relaunched.bookkeeping(1) == {'step': 1}
  relaunched.save(2, _small_state(2), {'step': 2})  # Over the leftovers.
  assert relaunched.latest_step() == 2
  assert relaunched.restore(2, _small_state(0))[1] == {'step': 2}
  relaunched.close()
  assert sorted(p.name for p in tmp_path.iterdir()
                if p.name.startswith('2')) == ['2']


def test_a_step_saved_twice_keeps_the_first(tmp_path):
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(5, _small_state(1), {'first': True})
    ckpt.save(5, _small_state(2), {'first': False})
    restored, bookkeeping = ckpt.restore(5, _small_state(0))
  assert bookkeeping == {'first': True}
  np.testing.assert_array_equal(restored['w'], [1.0, 1.0, 1.0])


def test_a_save_from_another_thread_during_a_save_is_skipped(tmp_path,
                                                           monkeypatch):
  # The emergency stop saves from the stop watcher's thread; it must not
  # write the same orbax step as a save the loop is stuck in.
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  entered, release = threading.Event(), threading.Event()
  orbax_save = ocp.CheckpointManager.save

  def stuck_save(self, *args, **kwargs):
    entered.set()
    assert release.wait(60)
    return orbax_save(self, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', stuck_save)
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    loop = threading.Thread(target=ckpt.save,
                            args=(1, _small_state(1), {'by': 'loop'}))
    loop.start()
    assert entered.wait(60)
    ckpt.save(1, _small_state(9), {'by': 'watcher'})  # Returns at once.
    release.set()
    loop.join(60)
    assert ckpt.latest_step() == 1
    assert ckpt.bookkeeping(1) == {'by': 'loop'}


def test_directory_removed_under_an_open_manager(tmp_path):
  # A fresh start clears the run directory after asking for the latest step.
  directory = tmp_path / 'checkpoints'
  with checkpoints_lib.Checkpoints(directory) as ckpt:
    ckpt.save(3, _small_state(3), {})
    shutil.rmtree(directory)
    ckpt.save(3, _small_state(4), {'again': True})
    assert ckpt.latest_step() == 3
    assert ckpt.bookkeeping(3) == {'again': True}


def test_latest_step_of_a_missing_directory_creates_nothing(tmp_path):
  directory = tmp_path / 'never'
  assert checkpoints_lib.Checkpoints(directory).latest_step() is None
  assert not directory.exists()


# ---- Errors ----


def test_other_submission_is_a_one_line_mismatch(setup, tmp_path):
  run_dir = tmp_path / 'run'
  _, adam = _initial_state(setup, 'adam')
  _, heavy_ball = _initial_state(setup, 'heavy_ball')
  with checkpoints_lib.Checkpoints(run_dir / 'checkpoints') as ckpt:
    ckpt.save(4, adam, {})
    with pytest.raises(checkpoints_lib.CheckpointMismatch) as info:
      ckpt.restore(4, heavy_ball)
  message = str(info.value)
  assert '\n' not in message
  assert str(run_dir) in message and 'step 4' in message
  assert ("only in the checkpoint: state[1].hyperparams['eps_root'], "
          'state[1].inner_state[0].count') in message
  assert 'only here: state[1].inner_state[0].trace' in message


class _Moments(NamedTuple):
  count: jax.Array
  nu: jax.Array


class _OtherMoments(NamedTuple):
  count: jax.Array
  nu: jax.Array


def test_same_leaves_in_another_named_tuple_is_a_mismatch(tmp_path):
  saved = (_Moments(jnp.int32(1), jnp.ones(3)), optax.EmptyState())
  other = (_OtherMoments(jnp.int32(0), jnp.zeros(3)), optax.EmptyState())
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(1, saved, {})
    with pytest.raises(checkpoints_lib.CheckpointMismatch,
                       match='a _Moments in the checkpoint is a _OtherMoments '
                             'here'):
      ckpt.restore(1, other)


def test_shape_and_dtype_mismatches_name_the_leaf(tmp_path):
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(1, _small_state(1), {})
    with pytest.raises(checkpoints_lib.CheckpointMismatch,
                       match=r"state\['w'\] is a jax array float32\[3\] in "
                             r'the checkpoint, a jax array float32\[4\] here'):
      ckpt.restore(1, {'w': jnp.zeros(4), 'count': jnp.int32(0)})
    with pytest.raises(checkpoints_lib.CheckpointMismatch, match='int8'):
      ckpt.restore(1, {'w': jnp.zeros(3), 'count': jnp.int8(0)})


def test_unsaveable_inputs_are_type_errors(tmp_path):
  ckpt = checkpoints_lib.Checkpoints(tmp_path)
  with pytest.raises(TypeError, match=r"state\['f'\]"):
    ckpt.save(1, {'f': object()}, {})
  with pytest.raises(TypeError, match='bookkeeping is not JSON'):
    ckpt.save(1, _small_state(1), {'when': object()})
  assert ckpt.latest_step() is None
  with pytest.raises(ValueError, match='keep'):
    checkpoints_lib.Checkpoints(tmp_path, keep=0)


# ---- The step function after a restore ----


def test_restored_state_does_not_recompile_the_step(setup, tmp_path):
  workload, parallel, _, _ = setup
  submission, like = _initial_state(setup, 'adam')
  _, state = _initial_state(setup, 'adam')
  regime = base.BatchRegime(full_batch=True, train_size=64, batch_size=64,
                            chunk_size=64)
  batch = parallel.shard_batch(workload.dataset(regime).fixed_batch(64, 64))
  rng = np.asarray(jax.random.PRNGKey(2))

  def step(state):
    params, opt_state, model_state = state
    out = submission.update_params(workload, params, model_state, batch,
                                   opt_state, [], 0, rng)
    return out.params, out.optimizer_state, out.model_state

  state = step(step(state))  # Compiled; then fed its own outputs.
  with checkpoints_lib.Checkpoints(tmp_path) as ckpt:
    ckpt.save(2, state, {})
    restored, _ = ckpt.restore(2, like)
    again, _ = ckpt.restore(2, like)
  _assert_bitwise(restored, state)
  clock = clock_lib.SubmissionClock()
  clock.resume()
  clock.pause(step(restored))
  assert clock.compiles == 0
  # The count would see a layout the step was not compiled for.
  single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  clock.resume()
  clock.pause(step(jax.device_put(again, single)))
  assert clock.compiles >= 1


# ---- Quiet and without leftovers ----


def test_no_orbax_info_logs_and_no_threads_after_close(tmp_path, caplog):
  before = set(threading.enumerate())
  caplog.set_level(logging.DEBUG)
  ckpt = checkpoints_lib.Checkpoints(tmp_path, keep=1)
  for step in (1, 2):
    ckpt.save(step, _small_state(step), {})
  ckpt.restore(2, _small_state(0))
  ckpt.close()
  orbax_info = [r for r in caplog.records if 'orbax' in r.pathname and
                r.levelno < logging.WARNING]
  assert not orbax_info, orbax_info[0].getMessage()
  # Orbax's closed event loops let idle executor threads end on their own.
  for thread in set(threading.enumerate()) - before:
    thread.join(timeout=10)
  alive = [t for t in set(threading.enumerate()) - before if t.is_alive()]
  assert not alive, alive
