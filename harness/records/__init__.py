"""Run records: the only contract between running and scoring.

A run writes one directory::

  <experiment_dir>/<workload>/<submission>/study_<s>/trial_<t>/
    meta.json         `Meta`, written once, before the first step
    metrics.jsonl     one `EvalRecord` per evaluation, appended and flushed
    curvature.jsonl   one `ProbeRecord` per curvature probe (when probing)
    summary.json      `Summary`, written when the run ends; absent while
                      it runs
    lock              held (flock) by the live process writing the run;
                      names its host and pid (`RunLock`, `lock_holder`)
    checkpoints/      orbax checkpoints of the training state, for resume
    preconditioner_step_<N>.npz
                      the submission's diagonal preconditioner P at step N
                      (with `--save_preconditioner_at`), for frozen-Adam
                      runs: an .npz of P's leaves keyed by their pytree
                      paths, the format of `submissions.preconditioner_file`
                      (which frozen_adam reads; see `preconditioner_path`)

Each record kind is a frozen dataclass (`_schema.py`, on the typed-JSON
`Record` of `_typed.py`), written with `to_json` and read with `from_json` by
the same code (`_io.py`), so writer and reader cannot drift apart: a
record with a missing, extra or ill-typed field raises `RecordError` naming
the file, the line and the field. Every record carries `schema_version`.

JSONL files are appended line by line and flushed after each line, so a
killed process leaves every complete line readable; the reader skips a
truncated or unreadable line with a warning. `summary.json` and `meta.json`
are written to a temporary file and renamed, so they are either whole or
absent. Non-finite numbers are written as the strings "nan", "inf" and
"-inf" (strict JSON has none) and read back as floats.

BUILD.md's "Run records" section documents every field; a test checks that it
lists exactly the fields of these dataclasses.
"""


from harness.records._typed import SCHEMA_VERSION
from harness.records._typed import Record
from harness.records._typed import RecordError
from harness.records._typed import finite
from harness.records._schema import CHECKPOINT_DIR
from harness.records._schema import CURVATURE_FILE
from harness.records._schema import LOCK_FILE
from harness.records._schema import META_FILE
from harness.records._schema import METRICS_FILE
from harness.records._schema import SUMMARY_FILE
from harness.records._schema import Devices
from harness.records._schema import ErrorKind
from harness.records._schema import EvalRecord
from harness.records._schema import Meta
from harness.records._schema import ProbeReason
from harness.records._schema import ProbeRecord
from harness.records._schema import Regime
from harness.records._schema import Status
from harness.records._schema import SubmissionFacts
from harness.records._schema import Summary
from harness.records._schema import WorkloadFacts
from harness.records._schema import preconditioner_path
from harness.records._schema import run_dir
from harness.records._lock import RunLock
from harness.records._lock import RunLocked
from harness.records._lock import lock_holder
from harness.records._io import RunRecord
from harness.records._writer import RunWriter
from harness.records._writer import dumps
from harness.records._io import find_run_dirs
from harness.records._io import read_json
from harness.records._io import read_jsonl
from harness.records._io import read_run
from harness.records._writer import write_json_atomic

__all__ = [
    'CHECKPOINT_DIR',
    'CURVATURE_FILE',
    'Devices',
    'ErrorKind',
    'EvalRecord',
    'LOCK_FILE',
    'META_FILE',
    'METRICS_FILE',
    'Meta',
    'ProbeReason',
    'ProbeRecord',
    'Record',
    'RecordError',
    'Regime',
    'RunLock',
    'RunLocked',
    'RunRecord',
    'RunWriter',
    'SCHEMA_VERSION',
    'SUMMARY_FILE',
    'Status',
    'SubmissionFacts',
    'Summary',
    'WorkloadFacts',
    'dumps',
    'find_run_dirs',
    'lock_holder',
    'finite',
    'preconditioner_path',
    'read_json',
    'read_jsonl',
    'read_run',
    'run_dir',
    'write_json_atomic',
]
