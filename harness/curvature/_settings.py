"""The settings of a sharpness probe: its method, and the checked, frozen
configuration that keys its compilation."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import jax.numpy as jnp

from harness.curvature._operators import HvpMode


class LanczosMethod(str, enum.Enum):
  """How the top k eigenvalues are found (BENCHMARKS.md measures both).

  Attributes:
    SINGLE: single-vector Lanczos, one product per iteration.
    BLOCK: block Lanczos with a block of k vectors (k ≥ 2): one batched
      product of k vectors per iteration, k times fewer iterations.
    AUTO: SINGLE. Block Lanczos needs about twice the products for the
      same accuracy (its Krylov space grows k vectors at a time from the
      same start), so it pays only where a batched product of k vectors
      costs little more than one; on the CPU measured it costs k (see
      BENCHMARKS.md, where `tests/benchmarks` measures both). Ask for
      BLOCK on a device where that benchmark shows it faster.
  """

  SINGLE = 'single'
  BLOCK = 'block'
  AUTO = 'auto'


@dataclasses.dataclass(frozen=True)
class Config:
  """A probe's settings, static in its compiled program (see
  `make_sharpness_fn` for each)."""

  k: int
  num_iterations: int
  tol: float | None
  check_every: int
  return_vectors: bool
  dtype: Any
  hvp_mode: HvpMode
  breakdown_tol: float | None
  seed: int
  method: LanczosMethod = LanczosMethod.AUTO
  batch_products: bool | None = None

  @property
  def block(self) -> bool:
    """Whether block Lanczos runs (`LanczosMethod`)."""
    return self.method is LanczosMethod.BLOCK


def resolve_method(method: LanczosMethod | str, k: int) -> LanczosMethod:
  """Turns AUTO into SINGLE or BLOCK for top-k (see `LanczosMethod`)."""
  method = LanczosMethod(method)
  if method is LanczosMethod.BLOCK and k < 2:
    raise ValueError(f'block Lanczos needs k >= 2, got k={k}; use '
                     'method="single" for the top eigenvalue alone')
  if method is LanczosMethod.AUTO:
    return LanczosMethod.SINGLE
  return method


def checked_config(*, k: int, num_iterations: int, check_every: int,
                   hvp_mode: HvpMode | str, dtype: Any,
                   method: LanczosMethod | str = LanczosMethod.AUTO,
                   **settings: Any) -> Config:
  """The probe's `Config`, its settings checked (ValueError for one out of
  range) and normalised, so that equal settings make equal keys."""
  if k < 1 or num_iterations < k:
    raise ValueError(
        f'need 1 <= k <= num_iterations, got k={k}, '
        f'num_iterations={num_iterations}')
  if check_every < 1:
    raise ValueError(f'check_every must be >= 1, got {check_every}')
  # A dtype by one name (jnp.float32, 'float32') is one static key.
  dtype = None if dtype is None else jnp.dtype(dtype)
  return Config(k=k, num_iterations=num_iterations, check_every=check_every,
                hvp_mode=HvpMode(hvp_mode), dtype=dtype,
                method=resolve_method(method, k), **settings)
