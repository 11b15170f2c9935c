"""The joint probe (two Lanczos recurrences on one linearisation) and block
Lanczos, against dense spectra and against problems solved one at a time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import pytest

from harness import curvature
from harness.curvature import _block_lanczos
from harness.curvature import _lanczos
from tests.test_curvature import _chunked
from tests.test_curvature import _count_equations
from tests.test_curvature import _mlp_data
from tests.test_curvature import _mlp_params
from tests.test_curvature import _random_diagonal
from tests.test_curvature import _relerr
from tests.test_curvature import mlp64  # pylint: disable=unused-import
from tests.test_curvature import tanh_mlp_loss


def _spectrum_matrix(top, dim=120, seed=0):
  rng = np.random.default_rng(seed)
  q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
  spectrum = np.concatenate([top, rng.uniform(0, 1, dim - len(top))])
  return jnp.asarray(q @ np.diag(spectrum) @ q.T, jnp.float32)


# ---- Stacked recurrences ----


def test_stacked_problems_stop_apart_and_match_each_alone():
  """A well-separated and a clustered spectrum advance together; each stops
  on its own residual, where it stops when run alone, with the same
  result."""
  matrices = jnp.stack([_spectrum_matrix([10.0, 5.0]),
                        _spectrum_matrix([10.0, 9.9, 9.8], seed=1)])
  def products(v, active):
    del active  # Rows of stopped problems are never read.
    return jnp.einsum('bij,bj->bi', matrices, v)

  seed = jnp.uint32(3)
  v0 = _lanczos.start_vectors([None, None], seed, 120, jnp.float32)
  settings = dict(num_iterations=60, k=1, tol=1e-5, check_every=1,
                  return_vectors=False, breakdown_tol=1e-6)
  both = jax.jit(lambda v0: _lanczos.lanczos_stacked(products, v0, seed,
                                                     **settings))(v0)
  for b in range(2):
    alone = jax.jit(lambda v: _lanczos.lanczos_from(
        lambda x, b=b: matrices[b] @ x, v, seed, **settings))(v0[b])
    assert int(both.num_matvecs[b]) == int(alone.num_matvecs)
    np.testing.assert_allclose(both.eigenvalues[b], alone.eigenvalues,
                               rtol=1e-6)
    assert bool(both.converged[b])
  easy, hard = (int(n) for n in both.num_matvecs)
  assert easy < hard < 60


@pytest.mark.parametrize('batch_products', [True, False])
def test_stacked_products_are_each_problem_s_own(batch_products):
  """Every running problem gets its own product, batched or not, whichever
  others have stopped; a stopped problem's row is zero."""
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 1)
  diags = [curvature.as_preconditioner(_random_diagonal(params, seed))
           for seed in (2, 3)]
  preconditioners = [None, *diags]
  dim = ravel_pytree(params)[0].size
  vectors = jnp.asarray(np.random.default_rng(0).normal(size=(3, dim)),
                        jnp.float32)

  @jax.jit
  def run(vectors, active):
    return curvature.hessian_operators(
        tanh_mlp_loss, params, preconditioners, batch=batch,
        batch_products=batch_products).products(vectors, active)

  want = jnp.stack([
      jax.jit(lambda v, p=p: curvature.hessian_operator(
          tanh_mlp_loss, params, batch=batch, preconditioner=p).matvec(v))(v)
      for p, v in zip(preconditioners, vectors)])
  for active in ([True, True, True], [True, False, True], [False, True,
                                                           False]):
    got = run(vectors, jnp.asarray(active))
    for b, running in enumerate(active):
      if running:
        np.testing.assert_allclose(got[b], want[b], rtol=2e-5, atol=1e-6)
      else:
        np.testing.assert_array_equal(got[b], 0.0)


def test_joint_matches_dense_spectra(mlp64):
  with jax.enable_x64(True):
    both = curvature.joint_sharpness(
        tanh_mlp_loss, mlp64['params'], mlp64['diag'],
        batch=_chunked(mlp64['data'], 1), k=3, num_iterations=80)
    alone = curvature.sharpness(tanh_mlp_loss, mlp64['params'],
                                batch=_chunked(mlp64['data'], 1),
                                num_iterations=8)
  assert isinstance(both, curvature.JointSharpness)
  assert _relerr(both.raw.eigenvalues, mlp64['eig_h'][:3]) < 1e-4
  assert _relerr(both.preconditioned.eigenvalues, mlp64['eig_p'][:3]) < 1e-4
  for result in both:
    assert bool(result.converged)
    np.testing.assert_allclose(result.loss, alone.loss, rtol=1e-12)
    np.testing.assert_allclose(result.grad_norm, alone.grad_norm, rtol=1e-12)


@pytest.mark.parametrize('batch_products', [True, False])
def test_joint_probe_gives_what_two_calls_give(batch_products):
  """From the same start vectors, `joint` uses the products of each
  problem alone and finds the same eigenvalues, its products batched or
  not; one compilation serves every later probe, warm-started, with no
  hidden transfers."""
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 2)
  diag = _random_diagonal(params, seed=4)
  probe = curvature.make_sharpness_fn(tanh_mlp_loss, k=2, num_iterations=60,
                                      tol=1e-4, check_every=1,
                                      return_vectors=True,
                                      batch_products=batch_products)
  # A fixed start (shaped as k = 2 eigenvectors, as warm starts are).
  start = jax.tree.map(lambda x: jnp.stack([x, x]),
                       _random_diagonal(params, seed=9))
  raw = probe(params, batch, None, start)
  pre = probe(params, batch, diag, start)
  both = probe.joint(params, batch, diag, (start, start))
  for joint, alone in ((both.raw, raw), (both.preconditioned, pre)):
    assert int(joint.num_hvps) == int(alone.num_hvps)
    np.testing.assert_allclose(joint.eigenvalues, alone.eigenvalues,
                               rtol=1e-5)
  assert int(raw.num_hvps) != int(pre.num_hvps)  # Each stopped apart.
  other, other_diag = _mlp_params(jnp.float32, 1), _random_diagonal(params, 7)
  with jax.transfer_guard('disallow'):
    again = probe.joint(other, batch, other_diag,
                        (both.raw.eigenvectors,
                         both.preconditioned.eigenvectors))
  assert probe.jitted_joint._cache_size() == 1
  assert not np.allclose(again.raw.eigenvalues, both.raw.eigenvalues)


def test_joint_program_does_not_grow_with_iterations():
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 1)
  diag = curvature.as_preconditioner(_random_diagonal(params))

  def count(m):
    probe = curvature.make_sharpness_fn(tanh_mlp_loss, num_iterations=m,
                                        tol=1e-3)
    traced = probe.jitted_joint.trace(params, batch, diag, (None, None),
                                      None, ())
    return _count_equations(traced.jaxpr.jaxpr)

  assert count(10) == count(35)


def test_probes_called_inside_a_trace_give_what_they_give_from_the_host():
  """On a CPU the probe's program takes compiler options, which only a call
  from the host may pass; inside another jit the probe compiles without."""
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 1)
  diag = _random_diagonal(params)
  probe = curvature.make_sharpness_fn(tanh_mlp_loss, num_iterations=12)
  host = probe.joint(params, batch, diag)
  inside = jax.jit(lambda p: probe.joint(p, batch, diag))(params)
  one_shot = jax.jit(lambda p: curvature.sharpness(
      tanh_mlp_loss, p, batch=batch, num_iterations=12).eigenvalues)(params)
  for a, b in zip(host, inside):
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-5)
  np.testing.assert_allclose(one_shot, host.raw.eigenvalues, rtol=1e-5)


def test_joint_and_block_refusals():
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 1)
  probe = curvature.make_sharpness_fn(tanh_mlp_loss, num_iterations=8)
  with pytest.raises(ValueError, match='needs a preconditioner'):
    probe.joint(params, batch, None)
  with pytest.raises(ValueError, match='needs a preconditioner'):
    curvature.joint_sharpness(tanh_mlp_loss, params, None, batch=batch)
  with pytest.raises(ValueError, match='k >= 2'):
    curvature.make_sharpness_fn(tanh_mlp_loss, method='block')
  block = curvature.make_sharpness_fn(tanh_mlp_loss, k=2, method='block')
  with pytest.raises(ValueError, match='single-vector'):
    block.joint(params, batch, _random_diagonal(params))
  with pytest.raises(ValueError, match='block'):
    curvature.make_sharpness_fn(tanh_mlp_loss, k=2, method='blocks')


# ---- Block Lanczos ----


@pytest.mark.parametrize('preconditioned', [False, True])
def test_block_lanczos_matches_dense_spectra(mlp64, preconditioned):
  want = mlp64['eig_p' if preconditioned else 'eig_h'][:3]
  with jax.enable_x64(True):
    got = curvature.sharpness(
        tanh_mlp_loss, mlp64['params'], batch=_chunked(mlp64['data'], 1),
        k=3, num_iterations=90, method='block', return_vectors=True,
        preconditioner=mlp64['diag'] if preconditioned else None)
    vectors = np.asarray(jax.vmap(lambda t: ravel_pytree(t)[0])(
        got.eigenvectors))
  assert _relerr(got.eigenvalues, want) < 1e-4
  assert bool(got.converged)
  assert int(got.num_hvps) == 90  # 30 blocks of 3 products.
  gram = vectors @ vectors.T
  np.testing.assert_allclose(gram, np.eye(3), atol=1e-8)


def test_block_lanczos_stops_early_in_whole_blocks():
  a = _spectrum_matrix([10.0, 6.0, 4.0], dim=200, seed=5)
  loss = lambda w: 0.5 * w @ a @ w
  got = curvature.sharpness(loss, jnp.zeros(200), k=2, num_iterations=60,
                            tol=1e-4, check_every=1, method='block')
  assert bool(got.converged)
  assert int(got.num_hvps) < 60 and int(got.num_hvps) % 2 == 0
  np.testing.assert_allclose(got.eigenvalues, [10.0, 6.0], rtol=1e-5)


def test_block_lanczos_low_rank_breakdown_is_finite():
  rng = np.random.default_rng(4)
  u = np.linalg.qr(rng.normal(size=(50, 2)))[0]
  a = jnp.asarray(u @ np.diag([7.0, 3.0]) @ u.T, jnp.float32)
  got = curvature.sharpness(lambda w: 0.5 * w @ a @ w, jnp.zeros(50), k=4,
                            num_iterations=24, method='block',
                            return_vectors=True)
  for leaf in got:
    assert np.all(np.isfinite(np.asarray(leaf)))
  np.testing.assert_allclose(got.eigenvalues[:2], [7.0, 3.0], rtol=1e-5)
  np.testing.assert_allclose(got.eigenvalues[2:], 0.0, atol=1e-5)


def test_block_program_does_not_grow_with_iterations():
  a = _spectrum_matrix([10.0, 6.0, 4.0], dim=40)

  def count(m):
    jaxpr = jax.make_jaxpr(lambda v0: _block_lanczos.block_lanczos(
        lambda v: v @ a, v0, jnp.uint32(0), num_iterations=m, k=2, tol=1e-3,
        check_every=1, return_vectors=True, breakdown_tol=1e-6))(
            jnp.ones((2, 40)))
    return _count_equations(jaxpr.jaxpr)

  assert count(4) == count(15)


def test_block_warm_start_from_eigenvectors_needs_fewer_products():
  params = _mlp_params(jnp.float32)
  batch = _chunked(_mlp_data(jnp.float32), 1)
  probe = curvature.make_sharpness_fn(tanh_mlp_loss, k=2, num_iterations=80,
                                      tol=1e-4, check_every=1,
                                      return_vectors=True, method='block')
  cold = probe(params, batch, None, probe.initial_vectors(params))
  warm = probe(params, batch, None, cold.eigenvectors)
  assert bool(cold.converged) and bool(warm.converged)
  assert int(warm.num_hvps) < int(cold.num_hvps)
  np.testing.assert_allclose(warm.eigenvalues, cold.eigenvalues, rtol=1e-4)
  assert probe.jitted._cache_size() == 1
