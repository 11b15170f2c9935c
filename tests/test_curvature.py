"""Tests of harness.curvature against exact (dense) Hessians."""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.extend
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np
import pytest

from harness import curvature
from harness.curvature import _lanczos
from harness.curvature import _sharpness
from tests import commands

REPO = pathlib.Path(__file__).resolve().parents[1]


def _relerr(got, want):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return np.max(np.abs(got - want) / np.abs(want))


# ---- A small MLP, its data, and its dense Hessian ----

SIZES = (6, 12, 12, 3)  # dim = 6*12+12 + 12*12+12 + 12*3+3 = 279.
NUM_EXAMPLES = 32


def _mlp_params(dtype, seed=0):
  key = jax.random.key(seed)
  params = []
  for a, b in zip(SIZES[:-1], SIZES[1:]):
    key, kw, kb = jax.random.split(key, 3)
    params.append({'w': jax.random.normal(kw, (a, b), dtype) / np.sqrt(a),
                   'b': 0.1 * jax.random.normal(kb, (b,), dtype)})
  return params


def _mlp_data(dtype):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(NUM_EXAMPLES, SIZES[0])), dtype)
  y = jnp.asarray(rng.integers(0, SIZES[-1], NUM_EXAMPLES), jnp.int32)
  return {'x': x, 'y': y}


def tanh_mlp_loss(params, chunk):
  """Mean cross-entropy of a tanh MLP given as a list of {'w', 'b'}."""
  h = chunk['x']
  for layer in params[:-1]:
    h = jnp.tanh(h @ layer['w'] + layer['b'])
  logits = h @ params[-1]['w'] + params[-1]['b']
  one_hot = jax.nn.one_hot(chunk['y'], logits.shape[-1], dtype=logits.dtype)
  return -jnp.mean(jnp.sum(one_hot * jax.nn.log_softmax(logits), -1))


def _chunked(data, num_chunks):
  return jax.tree.map(
      lambda x: x.reshape((num_chunks, -1) + x.shape[1:]), data)


def _dense_hessian(loss, params):
  flat, unravel = ravel_pytree(params)
  return np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat),
                    np.float64)


def _random_diagonal(params, seed=2):
  leaves, struct = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(struct, [
      jnp.asarray(rng.uniform(0.2, 3.0, np.shape(p)), p.dtype) for p in leaves])


# ---- Linear least squares: H = 2 XᵀX / n ----


def test_least_squares_top_k_matches_eigvalsh():
  rng = np.random.default_rng(0)
  n, d = 200, 60
  x = rng.normal(size=(n, d)) * np.linspace(0.2, 2.0, d)
  y = rng.normal(size=n)
  want = np.linalg.eigvalsh(2 * x.T @ x / n)[::-1][:4]
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  loss = lambda w: jnp.mean((xj @ w - yj) ** 2)
  got = curvature.sharpness(loss, jnp.zeros(d), k=4, num_iterations=40)
  assert got.eigenvalues.dtype == jnp.float32
  assert _relerr(got.eigenvalues, want) < 1e-4
  assert np.all(np.diff(np.asarray(got.eigenvalues)) <= 0)  # Descending.
  assert int(got.num_hvps) == 40


# ---- MLP against jax.hessian ----


@pytest.fixture(scope='module')
def mlp64():
  """Float64 MLP problem and its dense spectra (H and P^-1/2 H P^-1/2)."""
  with jax.enable_x64(True):
    params = _mlp_params(jnp.float64)
    data = _mlp_data(jnp.float64)
    hess = _dense_hessian(lambda p: tanh_mlp_loss(p, data), params)
    diag = _random_diagonal(params)
    d_flat = np.asarray(ravel_pytree(diag)[0])
    scaled = hess / np.sqrt(np.outer(d_flat, d_flat))
  eig_h, vec_h = np.linalg.eigh(hess)
  return {
      'params': params, 'data': data, 'diag': diag,
      'eig_h': eig_h[::-1], 'top_vector': vec_h[:, -1],
      'eig_p': np.linalg.eigvalsh(scaled)[::-1],
  }


@pytest.fixture(scope='module')
def mlp_probe():
  """One probe for the MLP tests: compiles once per dtype and P/no P."""
  return curvature.make_sharpness_fn(tanh_mlp_loss, k=3, num_iterations=80,
                                     return_vectors=True)


def _cast32(tree):
  return jax.tree.map(
      lambda x: jnp.asarray(x, jnp.float32)
      if jnp.issubdtype(x.dtype, jnp.floating) else jnp.asarray(x), tree)


@pytest.mark.parametrize('preconditioned', [False, True])
def test_mlp_top3_float64_matches_dense_hessian(mlp64, mlp_probe,
                                                preconditioned):
  # float64 (x64 enabled) for the 1e-4 bar; float32 is checked below.
  want = mlp64['eig_p' if preconditioned else 'eig_h'][:3]
  with jax.enable_x64(True):
    params = mlp64['params']
    batch = _chunked(mlp64['data'], 1)
    got = mlp_probe(params, batch,
                    mlp64['diag'] if preconditioned else None)
    assert got.eigenvalues.dtype == jnp.float64
    assert _relerr(got.eigenvalues, want) < 1e-4
    assert bool(got.converged)
    if preconditioned:
      return
    # The Ritz vectors are eigenvectors: ‖H y − θ y‖ small, as reported.
    loss = lambda p: tanh_mlp_loss(p, mlp64['data'])
    for i in range(3):
      y = jax.tree.map(lambda v: v[i], got.eigenvectors)
      assert jax.tree.structure(y) == jax.tree.structure(params)
      resid = (ravel_pytree(curvature.hvp(loss, params, y))[0] -
               got.eigenvalues[i] * ravel_pytree(y)[0])
      assert float(jnp.linalg.norm(resid)) < 1e-6 * float(want[0])
      assert float(got.residuals[i]) < 1e-6 * float(want[0])


@pytest.mark.parametrize('preconditioned', [False, True])
def test_mlp_top3_float32_within_1e3_of_float64_dense(mlp64, mlp_probe,
                                                      preconditioned):
  want = mlp64['eig_p' if preconditioned else 'eig_h'][:3]
  got = mlp_probe(_cast32(mlp64['params']),
                  _chunked(_cast32(mlp64['data']), 1),
                  _cast32(mlp64['diag']) if preconditioned else None)
  assert got.eigenvalues.dtype == jnp.float32
  assert _relerr(got.eigenvalues, want) < 1e-3


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _DenseInvSqrt(curvature.Preconditioner):
  """A non-diagonal P for flat params, given by the matrix P^-1/2."""

  inv_sqrt: jax.Array

  def apply_inv_sqrt(self, tree):
    return self.inv_sqrt @ tree


def test_non_diagonal_preconditioner_extension_point():
  rng = np.random.default_rng(3)
  d = 30
  a = rng.normal(size=(d, d))
  hess = a @ a.T / d
  q = np.linalg.qr(rng.normal(size=(d, d)))[0]
  p_inv_sqrt = q @ np.diag(rng.uniform(0.5, 2.0, d)) @ q.T  # SPD.
  want = np.linalg.eigvalsh(p_inv_sqrt @ hess @ p_inv_sqrt)[::-1][:2]
  hj = jnp.asarray(hess, jnp.float32)
  got = curvature.sharpness(
      lambda w: 0.5 * w @ hj @ w, jnp.zeros(d), k=2, num_iterations=d,
      preconditioner=_DenseInvSqrt(jnp.asarray(p_inv_sqrt, jnp.float32)))
  assert _relerr(got.eigenvalues, want) < 1e-4


# ---- Chunked batches ----


def test_chunked_batch_matches_unchunked_loss():
  params = _mlp_params(jnp.float32)
  data = _mlp_data(jnp.float32)
  batch = _chunked(data, 4)
  whole = lambda p: tanh_mlp_loss(p, data)
  tangent = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype)
                                           ).reshape(p.shape), params)

  @jax.jit
  def products(params, batch, tangent):
    return (curvature.hvp(whole, params, tangent),
            curvature.hvp(tanh_mlp_loss, params, tangent, batch=batch),
            curvature.loss_and_grad(whole, params),
            curvature.loss_and_grad(tanh_mlp_loss, params, batch=batch))

  hvp_w, hvp_c, (loss_w, grad_w), (loss_c, grad_c) = products(
      params, batch, tangent)
  flat = lambda t: ravel_pytree(t)[0]
  np.testing.assert_allclose(flat(hvp_c), flat(hvp_w), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loss_c, loss_w, rtol=1e-6)
  np.testing.assert_allclose(flat(grad_c), flat(grad_w), rtol=1e-5,
                             atol=1e-7)
  # The probe on chunks (JVP: one chunk's memory) and on the closed-over data
  # (LINEARIZE) agree.
  r_c = curvature.sharpness(tanh_mlp_loss, params, batch=batch, k=2,
                            num_iterations=30, hvp_mode='jvp')
  r_w = curvature.sharpness(whole, params, k=2, num_iterations=30,
                            hvp_mode='linearize')
  np.testing.assert_allclose(r_c.eigenvalues, r_w.eigenvalues, rtol=1e-5)
  np.testing.assert_allclose(r_c.grad_norm, r_w.grad_norm, rtol=1e-5)
  np.testing.assert_allclose(r_c.loss, loss_w, rtol=1e-6)


# ---- Lanczos on matrices ----


def test_breakdown_low_rank_gives_right_eigenvalues_and_no_nan():
  rng = np.random.default_rng(4)
  u = np.linalg.qr(rng.normal(size=(50, 2)))[0]
  a = jnp.asarray(u @ np.diag([7.0, 3.0]) @ u.T, jnp.float32)
  out = curvature.lanczos(lambda v: a @ v, 50, num_iterations=20, k=4,
                          return_vectors=True)
  for leaf in out:
    assert np.all(np.isfinite(np.asarray(leaf)))
  np.testing.assert_allclose(out.eigenvalues[:2], [7.0, 3.0], rtol=1e-5)
  np.testing.assert_allclose(out.eigenvalues[2:], 0.0, atol=1e-5)
  np.testing.assert_allclose(np.abs(out.eigenvectors[:2] @ u), np.eye(2),
                             atol=1e-4)
  # A start vector inside the range breaks down after 2 steps as well.
  out = curvature.lanczos(lambda v: a @ v, 50, num_iterations=10, k=2,
                          init_vector=jnp.asarray(u.T, jnp.float32))
  np.testing.assert_allclose(out.eigenvalues, [7.0, 3.0], rtol=1e-5)
  # A zero operator: every step breaks down.
  out = curvature.lanczos(jnp.zeros_like, 20, num_iterations=8, k=2)
  np.testing.assert_array_equal(out.eigenvalues, [0.0, 0.0])


def _easy_matrix(dim=200, seed=5):
  rng = np.random.default_rng(seed)
  q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
  spectrum = np.concatenate([[10.0, 6.0, 4.0], rng.uniform(0, 1, dim - 3)])
  return jnp.asarray(q @ np.diag(spectrum) @ q.T, jnp.float32), q


def test_residual_early_stopping_stops_before_cap():
  a, _ = _easy_matrix()
  cap = 60
  full = curvature.lanczos(lambda v: a @ v, 200, num_iterations=cap, k=2)
  early = curvature.lanczos(lambda v: a @ v, 200, num_iterations=cap, k=2,
                            tol=1e-4, check_every=2)
  assert int(full.num_matvecs) == cap
  assert int(early.num_matvecs) < cap
  assert bool(early.converged)
  assert np.all(np.asarray(early.residuals)
                <= 1e-4 * np.abs(np.asarray(early.eigenvalues)))
  np.testing.assert_allclose(early.eigenvalues, [10.0, 6.0], rtol=1e-5)


def test_long_run_keeps_ritz_vectors_orthonormal_across_basis_blocks():
  # 90 iterations fill twelve basis blocks; a clustered spectrum is where
  # lost orthogonality shows first, as spurious copies of top eigenvalues.
  rng = np.random.default_rng(6)
  dim = 400
  q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
  spectrum = np.concatenate([[10.0, 9.99, 9.98, 5.0, 4.0],
                             rng.uniform(0, 1, dim - 5)])
  a = jnp.asarray(q @ np.diag(spectrum) @ q.T, jnp.float32)
  out = curvature.lanczos(lambda v: a @ v, dim, num_iterations=90, k=5,
                          return_vectors=True)
  np.testing.assert_allclose(out.eigenvalues, spectrum[:5], rtol=1e-5)
  vectors = np.asarray(out.eigenvectors, np.float64)
  np.testing.assert_allclose(vectors @ vectors.T, np.eye(5), atol=1e-4)


def test_warm_start_from_true_eigenvector_needs_fewer_hvps(mlp64):
  params = _cast32(mlp64['params'])
  batch = _chunked(_cast32(mlp64['data']), 1)
  probe = curvature.make_sharpness_fn(
      tanh_mlp_loss, k=1, num_iterations=80, tol=1e-4, check_every=2,
      return_vectors=True)
  # Zeros mean a random start; every call below shares one compilation.
  cold = probe(params, batch, None, probe.initial_vectors(params))
  _, unravel = ravel_pytree(params)
  top = jax.tree.map(lambda x: x[None],
                     unravel(jnp.asarray(mlp64['top_vector'], jnp.float32)))
  warm = probe(params, batch, None, top)
  assert bool(cold.converged) and bool(warm.converged)
  assert int(warm.num_hvps) < int(cold.num_hvps)
  np.testing.assert_allclose(warm.eigenvalues, mlp64['eig_h'][:1], rtol=1e-4)
  np.testing.assert_allclose(cold.eigenvalues, mlp64['eig_h'][:1], rtol=1e-4)
  # So does the previous result's eigenvector.
  again = probe(params, batch, None, cold.eigenvectors)
  assert int(again.num_hvps) < int(cold.num_hvps)
  assert probe.jitted._cache_size() == 1


def test_init_vector_forms():
  params = _mlp_params(jnp.float32)
  flat, unravel = ravel_pytree(params)
  rows = jnp.stack([flat, 2 * flat])
  stacked = jax.vmap(unravel)(rows)
  for given, want in [(params, flat[None]), (stacked, rows), (flat, flat[None]),
                      (rows, rows)]:
    got = _sharpness._flat_init(given, params, flat.size, jnp.float32)
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match='init_vectors'):
    _sharpness._flat_init(jnp.ones(7), params, flat.size, jnp.float32)


def _count_equations(jaxpr) -> int:
  """Equations in a jaxpr and all its sub-jaxprs (loop bodies, branches)."""
  total = 0
  for eqn in jaxpr.eqns:
    total += 1
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else [param]:
        sub = getattr(sub, 'jaxpr', sub)  # ClosedJaxpr -> Jaxpr.
        if isinstance(sub, jax.extend.core.Jaxpr):
          total += _count_equations(sub)
  return total


def test_compiled_program_does_not_grow_with_iterations():
  a, _ = _easy_matrix(dim=40)
  matvec = lambda v: a @ v

  def count(m, tol):
    jaxpr = jax.make_jaxpr(
        lambda v0, seed: _lanczos.lanczos_from(
            matvec, v0, seed, num_iterations=m, k=2, tol=tol, check_every=4,
            return_vectors=True, breakdown_tol=1e-6))(
                jnp.ones(40) / np.sqrt(40), jnp.uint32(0))
    return _count_equations(jaxpr.jaxpr)

  assert count(10, None) == count(35, None)
  assert count(10, 1e-3) == count(35, 1e-3)


# ---- Compile once ----


def test_sharpness_fn_traces_once():
  traces = []

  def loss(params, chunk):
    traces.append(1)
    return tanh_mlp_loss(params, chunk)

  fn = curvature.make_sharpness_fn(loss, k=2, num_iterations=10,
                                   return_vectors=True)
  batch = _chunked(_mlp_data(jnp.float32), 2)
  p1, p2 = _mlp_params(jnp.float32, 0), _mlp_params(jnp.float32, 1)
  diag = _random_diagonal(p1)
  r1 = fn(p1, batch, diag, fn.initial_vectors(p1))
  first = len(traces)
  assert first > 0
  diag2 = _random_diagonal(p1, 7)
  # No hidden host/device copies in a probe (the checks of P included).
  with jax.transfer_guard('disallow'):
    r2 = fn(p2, batch, diag2, r1.eigenvectors)
  assert len(traces) == first
  assert fn.jitted._cache_size() == 1
  assert not np.allclose(r1.eigenvalues, r2.eigenvalues)


def test_repeated_sharpness_calls_compile_once():
  """The public one-shot function reuses its compilation for the same loss
  and shapes, and never reuses it for another loss or shape."""
  from harness import clock  # Counts XLA compilations.
  batch = _chunked(_mlp_data(jnp.float32), 2)
  params = _mlp_params(jnp.float32, 0)

  def loss(p, chunk):
    return tanh_mlp_loss(p, chunk)

  def scaled(p, chunk):  # Another loss: 3 times the Hessian.
    return 3.0 * tanh_mlp_loss(p, chunk)

  def call(fn, point):
    return curvature.sharpness(fn, point, batch=batch, num_iterations=12,
                               dtype=jnp.float32)

  first = call(loss, params)
  before = clock._COMPILES.count()
  again = call(loss, _mlp_params(jnp.float32, 1))
  assert clock._COMPILES.count() == before
  assert not np.allclose(first.eigenvalues, again.eigenvalues)
  other = call(scaled, params)
  assert clock._COMPILES.count() > before
  np.testing.assert_allclose(other.eigenvalues, 3 * first.eigenvalues,
                             rtol=1e-4)
  wider = [dict(layer) for layer in params]
  wider[-1] = {'w': jnp.zeros((SIZES[-2], 5)), 'b': jnp.zeros(5)}
  before = clock._COMPILES.count()
  call(loss, wider)
  assert clock._COMPILES.count() > before


# ---- Validation ----


@pytest.mark.parametrize('bad, match', [
    (0.0, 'bad entries'),
    (-1.0, 'bad entries'),
    (np.nan, 'bad entries'),
])
def test_invalid_preconditioner_values(bad, match):
  params = _mlp_params(jnp.float32)
  diag = jax.tree.map(jnp.ones_like, params)
  diag[1]['w'] = diag[1]['w'].at[3, 4].set(bad)
  loss = lambda p: tanh_mlp_loss(p, _mlp_data(jnp.float32))
  with pytest.raises(ValueError, match=match) as info:
    curvature.sharpness(loss, params, preconditioner=diag, num_iterations=4)
  assert "[1]['w']" in str(info.value)


def test_invalid_preconditioner_structure_and_shape():
  params = _mlp_params(jnp.float32)
  loss = lambda p: tanh_mlp_loss(p, _mlp_data(jnp.float32))
  missing = jax.tree.map(jnp.ones_like, params)[:-1]
  with pytest.raises(ValueError, match='structure'):
    curvature.sharpness(loss, params, preconditioner=missing)
  wrong = jax.tree.map(jnp.ones_like, params)
  wrong[0]['b'] = jnp.ones(5)
  with pytest.raises(ValueError, match='shape'):
    curvature.sharpness(loss, params, preconditioner=wrong)


def test_invalid_sizes():
  with pytest.raises(ValueError, match='num_iterations'):
    curvature.sharpness(lambda w: jnp.sum(w ** 2), jnp.ones(3),
                        num_iterations=5)
  with pytest.raises(ValueError, match='k'):
    curvature.make_sharpness_fn(lambda w: w, k=0)


# ---- Two devices ----

_SHARDED_SCRIPT = textwrap.dedent('''
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from tests import test_curvature as t
    from harness import curvature
    assert jax.device_count() == 2, jax.devices()
    params = t._mlp_params(jnp.float32)
    batch = t._chunked(t._mlp_data(jnp.float32), 2)
    diag = t._random_diagonal(params)
    fn = curvature.make_sharpness_fn(t.tanh_mlp_loss, k=3,
                                     num_iterations=40)
    one = fn(params, batch, diag)
    mesh = Mesh(np.array(jax.devices()), ('data',))
    rep = NamedSharding(mesh, P())
    sharded_batch = jax.device_put(batch, NamedSharding(mesh, P(None, 'data')))
    two = fn(jax.device_put(params, rep), sharded_batch,
             jax.device_put(diag, rep))
    assert len(sharded_batch['x'].sharding.device_set) == 2
    assert len(two.eigenvalues.sharding.device_set) == 2
    np.testing.assert_allclose(two.eigenvalues, one.eigenvalues, rtol=1e-5)
    np.testing.assert_allclose(two.grad_norm, one.grad_norm, rtol=1e-5)
    print('OK', one.eigenvalues, two.eigenvalues)
''')


@pytest.fixture(scope='module', autouse=True)
def two_device_run():
  """Starts the two-device check in a subprocess while the other tests run.

  It needs a fresh process (the device count is fixed when JAX starts);
  started first, it overlaps with the in-process tests on a 2-core machine.
  """
  env = commands.forced_devices(2)
  proc = subprocess.Popen([sys.executable, '-c', _SHARDED_SCRIPT], cwd=REPO,
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  yield proc
  if proc.poll() is None:
    proc.kill()
  proc.communicate()


def test_two_devices_match_one_device(two_device_run):
  out, _ = two_device_run.communicate(timeout=300)
  assert two_device_run.returncode == 0, out
  assert 'OK' in out
