"""Orbax checkpoints of one run: its training state and bookkeeping.

Each checkpoint is one orbax step directory holding three items, written
together by a `Composite` save so that a checkpoint has all of them or is
not there at all:

- 'state': the state's array leaves as a flat dict (PyTree item);
- 'layout': each leaf's path, kind, shape and dtype, and the values of
  Python scalar leaves (JSON item);
- 'bookkeeping': the run's own JSON dict (clock totals, milestones, ...).

The state is flattened here rather than handed to orbax as it is: optimizer
states hold `None`, empty NamedTuples and empty dicts, which orbax's pytree
handler cannot save as items of their own, and the layout lets a mismatch
be named by the leaf that differs. Restoring takes the structure from a
freshly initialised `like` and gives every array `like`'s sharding, so a
resumed step function sees the input layout it was compiled for.

Orbax writes a step into a temporary directory and renames it when
complete, so a process killed mid-save leaves only a temporary directory,
which orbax never lists as a step (and removes when the next manager opens).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import json
import logging
import pathlib
import threading
from typing import Any, Mapping

import jax
import numpy as np

_STATE, _LAYOUT, _BOOKKEEPING = 'state', 'layout', 'bookkeeping'
_ITEMS = (_STATE, _LAYOUT, _BOOKKEEPING)
# Python leaves kept in the layout (JSON) rather than as arrays.
_VALUE_TYPES = (bool, int, float, str)


class CheckpointMismatch(ValueError):
  """A checkpoint whose state is not shaped like this run's state."""


class _Kind(enum.Enum):
  """How a leaf is saved and what it is restored as."""

  JAX = 'jax'  # A jax.Array, restored with `like`'s sharding.
  NUMPY = 'numpy'  # A host array, restored as an np.ndarray.
  VALUE = 'value'  # A Python scalar, kept in the layout.


@dataclasses.dataclass(frozen=True)
class _Leaf:
  """One leaf of a state: where it is and what it holds."""

  path: str
  kind: _Kind
  shape: tuple[int, ...] = ()
  dtype: str = ''
  value: Any = None

  @property
  def is_array(self) -> bool:
    return self.kind is not _Kind.VALUE

  def to_json(self) -> dict[str, Any]:
    return {'path': self.path, 'kind': self.kind.value,
            'shape': list(self.shape), 'dtype': self.dtype,
            'value': self.value}

  @classmethod
  def from_json(cls, row: Mapping[str, Any]) -> _Leaf:
    return cls(row['path'], _Kind(row['kind']), tuple(row['shape']),
               row['dtype'], row['value'])

  def describe(self) -> str:
    if self.is_array:
      return f'{self.kind.value} array {self.dtype}{list(self.shape)}'
    return f'Python {type(self.value).__name__}'


def _leaf(path: str, x: Any) -> _Leaf:
  if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
    return _Leaf(path, _Kind.JAX, tuple(x.shape), str(x.dtype))
  if isinstance(x, (np.ndarray, np.generic)):
    return _Leaf(path, _Kind.NUMPY, tuple(x.shape), str(x.dtype))
  if isinstance(x, _VALUE_TYPES):
    return _Leaf(path, _Kind.VALUE, value=x)
  raise TypeError(f'cannot checkpoint the {type(x).__name__} at state{path}: '
                  'leaves must be arrays or Python scalars')


def _containers(treedef) -> list[str]:
  """The type names of a tree's inner nodes, in order."""
  data = treedef.node_data()
  if data is None:  # A leaf.
    return []
  names = [data[0].__qualname__]
  for child in treedef.children():
    names += _containers(child)
  return names


def _some(paths: list[str], shown: int = 3) -> str:
  if not paths:
    return 'none'
  more = f' and {len(paths) - shown} more' if len(paths) > shown else ''
  return ', '.join(f'state{p}' for p in paths[:shown]) + more


@dataclasses.dataclass(frozen=True)
class _Layout:
  """What a state is made of: its leaves and its containers' types.

  The container types tell apart optimizer states whose leaves have the
  same paths and shapes (two NamedTuple classes with the same fields).
  """

  leaves: tuple[_Leaf, ...]
  containers: tuple[str, ...]

  @classmethod
  def of(cls, tree: Any) -> tuple[_Layout, list[Any], Any]:
    """The layout of `tree`, its leaves and its structure."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = tuple(_leaf(jax.tree_util.keystr(path), x) for path, x in pairs)
    return (cls(leaves, tuple(_containers(treedef))), [x for _, x in pairs],
            treedef)

  def to_json(self) -> dict[str, Any]:
    return {'leaves': [leaf.to_json() for leaf in self.leaves],
            'containers': list(self.containers)}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> _Layout:
    return cls(tuple(_Leaf.from_json(row) for row in data['leaves']),
               tuple(data['containers']))

  def difference(self, here: _Layout) -> str | None:
    """What differs between this saved layout and `here`, or None.

    A Python scalar here matches anything saved at its path, and is
    restored as saved: a jitted step turns a Python scalar into an array.
    """
    saved_paths = [leaf.path for leaf in self.leaves]
    here_paths = [leaf.path for leaf in here.leaves]
    if saved_paths != here_paths:
      only_saved = sorted(set(saved_paths) - set(here_paths))
      only_here = sorted(set(here_paths) - set(saved_paths))
      if not only_saved and not only_here:
        return 'the same leaves in another order'
      return (f'{len(saved_paths)} leaves saved, {len(here_paths)} here; '
              f'only in the checkpoint: {_some(only_saved)}; only here: '
              f'{_some(only_here)}')
    for old, new in zip(self.leaves, here.leaves):
      if new.is_array and (not old.is_array or
                           (old.shape, old.dtype) != (new.shape, new.dtype)):
        return (f'state{new.path} is a {old.describe()} in the checkpoint, '
                f'a {new.describe()} here')
    for old, new in zip(self.containers, here.containers):
      if old != new:
        return f'a {old} in the checkpoint is a {new} here'
    return None


def _key(index: int) -> str:
  return f'leaf_{index:05d}'


def _restore_arg(ocp, like: Any, leaf: _Leaf):
  if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
    if like.sharding is None:
      raise ValueError(f'state{leaf.path} of `like` has no sharding')
    return ocp.ArrayRestoreArgs(sharding=like.sharding)
  return ocp.RestoreArgs(restore_type=np.ndarray)


class _QuietOrbax(logging.Filter):
  """Drops orbax's INFO logs (dozens a save) and keeps its warnings."""

  def __init__(self, package_dir: str):
    super().__init__()
    self._package_dir = package_dir

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING or
            not record.pathname.startswith(self._package_dir))


def _import_orbax():
  """orbax.checkpoint, imported on first use: it costs about a second."""
  absl_logger = logging.getLogger('absl')
  if not any(isinstance(f, _QuietOrbax) for f in absl_logger.filters):
    # Before the import, which logs too; found without importing it.
    spec = importlib.util.find_spec('orbax')
    absl_logger.addFilter(_QuietOrbax(
        str(pathlib.Path(spec.submodule_search_locations[0]))))
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp


class Checkpoints:
  """Orbax checkpoints of one run in `<run_dir>/checkpoints`.

  `save` is synchronous and must be called by every process of a
  multi-host run (orbax writes each array shard once and synchronises the
  processes). Orbax is imported, and its manager opened, on first use.
  """

  def __init__(self, directory: pathlib.Path, *, keep: int = 3):
    if keep < 1:
      raise ValueError(f'keep must be at least 1, got {keep}')
    self._directory = pathlib.Path(directory)
    self._keep = keep
    self._manager = None
    self._ocp = None
    self._saving = threading.Lock()

  @property
  def directory(self) -> pathlib.Path:
    return self._directory

  def _open(self):
    # Reopened when the directory went away (a fresh start clears the run
    # directory), since the manager caches the steps it has seen.
    if self._manager is not None and not self._directory.is_dir():
      self.close()
    if self._manager is None:
      ocp = self._ocp = self._ocp or _import_orbax()
      options = ocp.CheckpointManagerOptions(
          enable_async_checkpointing=False, cleanup_tmp_directories=True,
          preservation_policy=ocp.checkpoint_managers.LatestN(self._keep))
      self._manager = ocp.CheckpointManager(
          self._directory.absolute(), options=options, item_names=_ITEMS)
    return self._manager

  def latest_step(self) -> int | None:
    """The last complete checkpoint's step, or None if there is none."""
    if self._manager is None and not self._directory.is_dir():
      return None
    return self._open().latest_step()

  def save(self, step: int, state: Any,
           bookkeeping: Mapping[str, Any]) -> None:
    """Writes `state` and `bookkeeping` as the checkpoint of `step`.

    Returns once the checkpoint is committed; only the last `keep` remain.
    A step already saved is kept as it is: it is the same step boundary
    (the runner may reach one twice, at a checkpoint and then at a stop).
    A save asked for by another thread while one is under way (an
    emergency stop while the loop is stuck in a save) returns at once
    without saving: two writers of one orbax step could publish a
    half-written directory, and the last complete checkpoint stays.

    Raises:
      TypeError: a leaf of `state` or a value of `bookkeeping` that
        cannot be saved.
    """
    layout, values, _ = _Layout.of(state)
    try:
      json.dumps(dict(bookkeeping))
    except (TypeError, ValueError) as e:
      raise TypeError(f'bookkeeping is not JSON: {e}') from None
    if not self._saving.acquire(blocking=False):
      return
    try:
      self._save(step, layout, values, bookkeeping)
    finally:
      self._saving.release()

  def _save(self, step: int, layout: _Layout, values: list[Any],
            bookkeeping: Mapping[str, Any]) -> None:
    manager = self._open()
    if step in manager.all_steps():
      return
    ocp = self._ocp
    items = {_LAYOUT: ocp.args.JsonSave(layout.to_json()),
             _BOOKKEEPING: ocp.args.JsonSave(dict(bookkeeping))}
    arrays = {_key(i): x for i, (leaf, x) in
              enumerate(zip(layout.leaves, values)) if leaf.is_array}
    if arrays:  # Orbax refuses an empty item.
      items[_STATE] = ocp.args.PyTreeSave(arrays)
    manager.save(step, args=ocp.args.Composite(**items), force=True)
    manager.wait_until_finished()

  def _check_step(self, step: int) -> None:
    steps = self._open().all_steps()
    if step not in steps:
      raise FileNotFoundError(
          f'no checkpoint of step {step} in {self._directory}; saved steps: '
          f'{sorted(steps)}')

  def bookkeeping(self, step: int) -> dict[str, Any]:
    """The bookkeeping saved with `step`, without reading the arrays."""
    self._check_step(step)
    restored = self._open().restore(
        step, args=self._ocp.args.Composite(
            **{_BOOKKEEPING: self._ocp.args.JsonRestore()}))
    return dict(restored[_BOOKKEEPING])

  def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
    """The state and bookkeeping saved with `step`.

    Args:
      step: a saved step.
      like: a pytree shaped like the saved state whose array leaves are
        jax.Arrays or jax.ShapeDtypeStructs with a sharding (and NumPy
        arrays for host arrays); each array is restored with its sharding.

    Returns:
      The state, in `like`'s structure with bitwise the saved values, and
      the bookkeeping.

    Raises:
      CheckpointMismatch: the saved state's leaves, shapes or dtypes are
        not `like`'s (another submission or workload, say).
    """
    self._check_step(step)
    ocp, manager = self._ocp, self._open()
    saved_layout = manager.restore(
        step, args=ocp.args.Composite(**{_LAYOUT: ocp.args.JsonRestore()}))
    saved = _Layout.from_json(saved_layout[_LAYOUT])
    here, like_leaves, treedef = _Layout.of(like)
    problem = saved.difference(here)
    if problem:
      raise CheckpointMismatch(
          f'the checkpoint of step {step} in run {self._directory.parent} '
          f'does not match this run\'s state: {problem}')
    restore_args = {_key(i): _restore_arg(ocp, x, leaf) for i, (leaf, x) in
                    enumerate(zip(saved.leaves, like_leaves))
                    if leaf.is_array}
    items = {_BOOKKEEPING: ocp.args.JsonRestore()}
    if restore_args:
      items[_STATE] = ocp.args.PyTreeRestore(restore_args=restore_args)
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    arrays = restored[_STATE] if restore_args else {}
    leaves = [arrays[_key(i)] if leaf.is_array else leaf.value
              for i, leaf in enumerate(saved.leaves)]
    return (jax.tree_util.tree_unflatten(treedef, leaves),
            dict(restored[_BOOKKEEPING]))

  def close(self) -> None:
    """Waits for orbax's work and releases its manager; reopens on use."""
    if self._manager is not None:
      self._manager.close()
      self._manager = None

  def __enter__(self) -> Checkpoints:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
