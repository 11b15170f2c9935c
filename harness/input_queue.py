"""The input queue a submission's `data_selection` draws its batches from.

Batches come from the workload's data set in its seeded order, each process
loading its own part of them, and reach the devices placed as the
submission takes them (`DataParallel.place_batch`).
A full batch is placed once and handed out again at every draw. The queue
counts its draws, so that a resumed run continues the data order where the
interrupted one left it.
"""

from __future__ import annotations

from typing import Any, Iterator

from harness import mesh as mesh_lib
from workloads import base


class InputQueue(Iterator[Any]):
  """Device batches in the data order, with the number drawn so far."""

  def __init__(self, dataset: base.Dataset, regime: base.BatchRegime,
               seed: int, parallel: mesh_lib.DataParallel, *,
               chunk_axis: bool, drawn: int = 0):
    """Opens the queue at draw `drawn` (0 at a run's start).

    Args:
      dataset, regime, seed: where the batches come from, and their order.
      parallel: the devices the batches are placed on.
      chunk_axis: whether the submission takes batches with the chunk axis.
      drawn: how many batches the run had drawn before; that many are
        skipped, except in full-batch mode, where every draw is the same.
    """
    self.drawn = drawn
    self._place = lambda batch: parallel.place_batch(batch,
                                                     chunk_axis=chunk_axis)
    self._batches = dataset.train_batches(
        regime, seed, parallel.part(chunk_axis=chunk_axis))
    self._full_batch = self._place(next(self._batches)) if (
        regime.full_batch) else None
    if self._full_batch is None:
      for _ in range(drawn):
        next(self._batches)

  def __next__(self) -> Any:
    batch = self._full_batch
    if batch is None:
      batch = self._place(next(self._batches))
    self.drawn += 1
    return batch
