"""One run over several processes (hosts), through `jax.distributed`.

Every process runs the same command; `initialize` joins them into one JAX
runtime whose mesh spans all their devices (`harness.mesh`). Each process
loads only its own part of every batch, computes what every other computes
on replicated arrays, and only process 0 writes records.

What every process must decide alike, or the processes would part ways at
the next collective and wait for each other forever:

- Values computed on the devices (losses, evaluations, the solution step)
  are replicated results of one program, the same on every process, and
  decide the target and the solution alike everywhere.
- What each process observes on its own host differs: a stop signal that
  reached one process only, its clock, its wall time since the last
  checkpoint, and (for safety, as it ends the run) the loss it read. These
  are exchanged at each synchronisation of the training loop (`Agreement`)
  and every process acts on the same result: any process's signal stops
  them all, any process's due checkpoint is taken by all, and the clock is
  the slowest process's.

A process that dies is noticed by JAX's coordination service within the
heartbeat timeout (`Cluster.timeout_s`), which then ends every other
process with its own message ("Terminating process because the JAX
distributed service detected fatal errors"). When a collective fails first
(CPU collectives over TCP report a closed connection at once), the runner
records the run as failed, this module's `ProcessLost` names the cause in
one line, and the process leaves at once (`leave`): JAX's shutdown would
wait for the dead process.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys

import jax
from jax.experimental import multihost_utils
import numpy as np

# JAX's default heartbeat timeout: how long a process may be silent before
# the coordination service declares it dead.
DEFAULT_TIMEOUT_S = 100

# What the collectives and the coordination service say when a peer process
# is gone (gloo: 'Gloo all-reduce failed: ... Connection reset by peer';
# NCCL: 'remote process exited or there was a network error').
_LOST_PROCESS = re.compile(
    r'\b(Gloo|NCCL|MPI)\b|coordination service|heartbeat|Connection reset|'
    r'Connection closed|Broken pipe|remote process exited', re.IGNORECASE)


class DistributedError(ValueError):
  """This process cannot join the run's processes; the message says why."""


class ProcessLost(RuntimeError):
  """A collective failed because another process of the run is gone."""


@dataclasses.dataclass(frozen=True)
class Cluster:
  """How this process joins the others of its run.

  Attributes:
    coordinator_address: `host:port` of process 0, which serves JAX's
      coordination service; None: from the cluster (SLURM, Kubernetes,
      Open MPI, Cloud TPU) or `JAX_COORDINATOR_ADDRESS`.
    num_processes: processes of the run; None: from the cluster.
    process_id: this process's index, from 0; None: from the cluster.
    timeout_s: a process silent this long is declared dead and the others
      are ended; a process that ends while others still wait for it ends
      them after as long (JAX's heartbeat and shutdown timeouts).
  """

  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  timeout_s: int = DEFAULT_TIMEOUT_S

  def __post_init__(self):
    if not self.timeout_s >= 1:
      raise ValueError(f'distributed timeout must be at least 1 s, got '
                       f'{self.timeout_s}')


def initialize(cluster: Cluster) -> None:
  """Joins the run's processes; call before anything else uses JAX.

  Raises:
    DistributedError: the cluster's settings are missing or wrong (not
      under a cluster JAX recognises, and not given).
  """
  try:
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator_address,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
        heartbeat_timeout_seconds=cluster.timeout_s,
        shutdown_timeout_seconds=cluster.timeout_s)
  except (ValueError, TypeError, RuntimeError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise DistributedError(
        f'cannot join the run\'s processes ({first}); give '
        '--coordinator_address, --num_processes and --process_id, or run '
        'under SLURM, Kubernetes (jax[k8s]) or Open MPI, which JAX '
        'detects') from e


def from_process_zero(value: int) -> int:
  """Process 0's `value`, on every process (a collective)."""
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def lost_process(error: BaseException) -> ProcessLost | None:
  """`error` as a lost process, when it is one; else None.

  Only a run of several processes loses one: a collective or the
  coordination service failing there means another process is gone.
  """
  if isinstance(error, ProcessLost):
    return error
  if jax.process_count() == 1:
    return None
  first = (str(error).strip().splitlines() or [''])[0]
  if not _LOST_PROCESS.search(first):
    return None
  return ProcessLost(
      f'process {jax.process_index()} of {jax.process_count()} stopped: '
      f'another process of the run is gone ({first}); run the same command '
      'on every process again to resume from the last checkpoint')


def leave(status: int) -> None:
  """Ends this process now with `status`, output flushed.

  JAX's shutdown waits at a barrier for every process, which a lost one
  never reaches; the records are already written.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)


@dataclasses.dataclass(frozen=True)
class Votes:
  """What one process observes at a synchronisation, or what all agreed.

  Attributes:
    signal: a stop signal's number (SIGTERM, SIGINT), or 0.
    diverged: whether the loss (or the parameters) was not finite.
    checkpoint_due: whether a checkpoint is due by wall time.
    clock_s: the submission clock's steady-loop total.
    first_step_s: the run's first step, compilation included.
    prepare_for_eval_s: time in `prepare_for_eval` so far.
  """

  signal: int = 0
  diverged: bool = False
  checkpoint_due: bool = False
  clock_s: float = 0.0
  first_step_s: float = 0.0
  prepare_for_eval_s: float = 0.0

  @property
  def submission_time_s(self) -> float:
    """AlgoPerf's submission time (see `harness.clock`)."""
    return self.clock_s + self.first_step_s + self.prepare_for_eval_s


class Agreement:
  """Every process's `Votes` into one, the same on every process.

  Each field is the largest over the processes: any process's signal,
  divergence or due checkpoint holds for all, and each time is the slowest
  process's (each reads its clock after its own device work is done, so
  the largest reading is the time until every process was done). With one
  process this is the process's own votes, and costs nothing.
  """

  def __init__(self):
    self.alone = jax.process_count() == 1

  def __call__(self, votes: Votes) -> Votes:
    if self.alone:
      return votes
    mine = dataclasses.astuple(votes)
    # Sent as 32-bit words: JAX without x64 would round float64 to float32.
    words = np.asarray(mine, np.float64).view(np.uint32)
    gathered = np.asarray(multihost_utils.process_allgather(words))
    largest = gathered.view(np.float64).max(axis=0)
    return Votes(*(type(own)(value) for own, value in zip(mine, largest)))
