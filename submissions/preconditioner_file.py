"""A diagonal preconditioner saved to, and read back from, an .npz file.

The runner saves a submission's P (`--save_preconditioner_at`) with `save`;
a submission that starts from a saved P, such as frozen Adam, reads it with
`load`. The layout of the file is `FILE_FORMAT`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FILE_FORMAT = """\
A NumPy .npz archive (`numpy.savez`, uncompressed) holding one array per
leaf of the params-shaped pytree of P's diagonal. Each array is named by its
leaf's path as `jax.tree_util.keystr` writes it, e.g. "['Dense_0']['kernel']"
(so the names follow the params' structure, not their order), and keeps the
leaf's shape and dtype. Reading matches entries to a template pytree by
these names: entries the template lacks are ignored, and a template leaf
without an entry is an error.
"""


def save(path: str, tree: Any) -> None:
  """Writes a params-shaped pytree to `path` in `FILE_FORMAT`."""
  flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in
          jax.tree_util.tree_flatten_with_path(tree)[0]}
  np.savez(path, **flat)


def load(path: str, like: Any) -> Any:
  """Reads a file in `FILE_FORMAT` into the pytree structure of `like`.

  Args:
    path: the .npz file.
    like: a pytree (e.g. the params) whose structure and leaf shapes the
      result takes.

  Returns:
    A pytree like `like` of device arrays with the saved values.

  Raises:
    ValueError: naming (the first five) leaves of `like` the file lacks.
  """
  with np.load(path) as data:
    leaves_with_paths = jax.tree_util.tree_flatten_with_path(like)[0]
    missing = [jax.tree_util.keystr(p) for p, _ in leaves_with_paths
               if jax.tree_util.keystr(p) not in data]
    if missing:
      raise ValueError(f'{path} lacks preconditioner entries {missing[:5]}')
    leaves = [jnp.asarray(data[jax.tree_util.keystr(p)]).reshape(x.shape)
              for p, x in leaves_with_paths]
  return jax.tree.unflatten(jax.tree.structure(like), leaves)
