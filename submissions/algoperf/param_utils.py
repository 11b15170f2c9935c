"""AlgoPerf's `param_utils`, JAX part: parameter shapes as pytree leaves."""

from __future__ import annotations

from typing import Any

import jax

from submissions.algoperf import spec


def jax_param_shapes(params: Any) -> Any:
  """`params` with each array replaced by its `spec.ShapeTuple`."""
  return jax.tree.map(lambda x: spec.ShapeTuple(tuple(x.shape)), params)
