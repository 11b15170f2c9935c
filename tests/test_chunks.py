"""Tests of workloads.chunks: the chunk layout and the mean over chunks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workloads import chunks


def _data(n: int = 12):
  rng = np.random.default_rng(0)
  return {'x': rng.normal(size=(n, 3)).astype(np.float32),
          'y': rng.normal(size=(n,)).astype(np.float32)}


def _linear_loss(params, state, chunk):
  """Mean squared error of a linear model; the state counts the chunks."""
  residual = chunk['x'] @ params['w'] + params['b'] - chunk['y']
  return 0.5 * jnp.mean(residual**2), state + 1


# ---- Host layout ----


def test_chunked_reshapes_and_names_the_bad_key():
  data = _data(12)
  out = chunks.chunked(data, 4)
  assert out['x'].shape == (3, 4, 3) and out['y'].shape == (3, 4)
  np.testing.assert_array_equal(out['x'].reshape(12, 3), data['x'])
  assert np.shares_memory(out['x'], data['x'])
  with pytest.raises(ValueError, match="does not divide the 12 rows of 'x'"):
    chunks.chunked(data, 5)


def test_padded_rows_appends_zero_rows_only_when_needed():
  data = _data(10)
  assert chunks.padded_rows(data, 5) is data
  out = chunks.padded_rows(data, 4)
  assert out['x'].shape == (12, 3) and out['y'].dtype == np.float32
  np.testing.assert_array_equal(out['x'][:10], data['x'])
  assert not out['x'][10:].any() and not out['y'][10:].any()


def test_num_chunks_needs_one_leading_axis():
  assert chunks.num_chunks({'a': jnp.zeros((3, 2)), 'b': jnp.zeros(3)}) == 3
  with pytest.raises(ValueError, match='one leading chunk axis'):
    chunks.num_chunks({'a': jnp.zeros((3, 2)), 'b': jnp.zeros(4)})


def test_parts_split_every_chunk_or_the_merged_examples():
  grid = np.arange(12).reshape(2, 6)  # Example c * 6 + i of the batch.
  by_chunk = [chunks.Part(i, 3).take(grid) for i in range(3)]
  np.testing.assert_array_equal(by_chunk[1], [[2, 3], [8, 9]])
  np.testing.assert_array_equal(np.concatenate(by_chunk, axis=1), grid)
  merged = [chunks.Part(i, 2, across_chunks=True).take(grid)
            for i in range(2)]
  np.testing.assert_array_equal(merged[1], [[6, 7, 8, 9, 10, 11]])
  np.testing.assert_array_equal(chunks.Part(1, 3).positions(2, 6),
                                by_chunk[1])
  batch = {'x': np.zeros((2, 6, 5)), 'y': np.zeros((2, 6))}
  assert chunks.WHOLE.take_batch(batch) is batch
  assert {k: v.shape for k, v in chunks.Part(0, 2).take_batch(
      batch).items()} == {'x': (2, 3, 5), 'y': (2, 3)}
  with pytest.raises(ValueError, match='6 examples do not split into 4'):
    chunks.Part(0, 4).take(grid)
  with pytest.raises(ValueError, match='part 2 of 2'):
    chunks.Part(2, 2)


# ---- Mean loss and gradient ----


@pytest.fixture
def params():
  return {'w': jnp.array([0.5, -1.0, 2.0]), 'b': jnp.array(0.25)}


@pytest.mark.parametrize('num_chunks', [1, 3, 4])
def test_mean_over_chunks_is_the_batch_loss_and_threads_state(params,
                                                              num_chunks):
  data = _data(12)
  batch = jax.tree.map(jnp.asarray, chunks.chunked(data, 12 // num_chunks))
  fn = jax.jit(lambda p, b: chunks.mean_loss_and_grad(_linear_loss, p, b, 0))
  (loss, state), grad = fn(params, batch)
  whole = lambda p: _linear_loss(p, 0, jax.tree.map(jnp.asarray, data))[0]
  want_loss, want_grad = jax.value_and_grad(whole)(params)
  assert int(state) == num_chunks
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for key in params:
    np.testing.assert_allclose(grad[key], want_grad[key], rtol=1e-5)


def test_one_chunk_is_one_call_unless_asked_to_scan(params):
  batch = jax.tree.map(jnp.asarray, chunks.chunked(_data(8), 8))

  def run(scan_one_chunk):
    return lambda p: chunks.mean_loss_and_grad(
        _linear_loss, p, batch, 0, scan_one_chunk=scan_one_chunk)

  assert 'scan' not in str(jax.make_jaxpr(run(False))(params))
  assert 'scan' in str(jax.make_jaxpr(run(True))(params))
  plain, scanned = jax.jit(run(False))(params), jax.jit(run(True))(params)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(scanned)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def _noisy_loss(params, state, chunk, scale, rng):
  noise = jax.random.uniform(rng)
  return scale * jnp.sum(params['w']) * noise + jnp.mean(chunk['y']), state


def test_rng_split_per_chunk_and_unsplit_for_one(params):
  data = jax.tree.map(jnp.asarray, _data(6))
  key = jax.random.key(3)
  mean = jax.jit(lambda p, b, k: chunks.mean_loss_and_grad(
      _noisy_loss, p, b, (), loss_args=(2.0,), rng=k)[0][0])
  one = chunks.chunked(data, 6)
  want = _noisy_loss(params, (), jax.tree.map(lambda x: x[0], one), 2.0,
                     key)[0]
  np.testing.assert_allclose(mean(params, one, key), want, rtol=1e-6)
  three = chunks.chunked(data, 2)
  keys = jax.random.split(key, 3)
  want = np.mean([_noisy_loss(params, (), jax.tree.map(lambda x: x[i], three),
                              2.0, keys[i])[0] for i in range(3)])
  np.testing.assert_allclose(mean(params, three, key), want, rtol=1e-6)


def test_loss_sum_keeps_the_loss_dtype():
  params = {'w': jnp.ones(3), 'b': jnp.zeros(())}
  batch = jax.tree.map(jnp.asarray, chunks.chunked(_data(6), 2))
  half = lambda p, s, c: (_linear_loss(p, s, c)[0].astype(jnp.bfloat16), s)
  (loss, _), grad = jax.jit(lambda p: chunks.mean_loss_and_grad(
      half, p, batch, 0))(params)
  assert loss.dtype == jnp.bfloat16
  assert grad['w'].dtype == jnp.float32
