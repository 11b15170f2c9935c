"""Curvature probes for any JAX loss: Hessian-vector products and Lanczos.

The public API:

* `sharpness(loss_fn, params, ...)`: top-k eigenvalues of H, or of
  P^-1/2 H P^-1/2 (preconditioned sharpness), as a `SharpnessResult`.
* `joint_sharpness(loss_fn, params, preconditioner, ...)`: both at one
  point, from one linearisation, the two Lanczos recurrences advanced
  together, as a `JointSharpness`.
* `make_sharpness_fn(loss_fn, ...)`: the same, compiled once and reused at
  every probe inside training (`SharpnessFn.joint` for both).
* `lanczos(matvec, dim, ...)`: Lanczos with full reorthogonalisation on any
  symmetric operator of flat vectors, as one compiled device loop.
* `hvp`, `loss_and_grad`, `hessian_operator`, `hessian_operators`: the
  products Lanczos uses, on a loss closing over its data or on a chunked
  batch; the last for several preconditioners at once.
* `Preconditioner`, `DiagonalPreconditioner`, `as_preconditioner`: the
  extension point for P (a diagonal pytree, or any object with P^-1/2).

References:
  C. Lanczos, J. Res. Nat. Bur. Standards 45 (1950).
  G. H. Golub and C. F. Van Loan, "Matrix Computations".
  J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability",
  arXiv:2207.14484 (2022).
  Z. Yao et al., "PyHessian: Neural Networks Through the Lens of the
  Hessian", arXiv:1912.07145 (2020).
"""

from harness.curvature._lanczos import LanczosResult
from harness.curvature._lanczos import lanczos
from harness.curvature._operators import DiagonalPreconditioner
from harness.curvature._operators import FlatOperator
from harness.curvature._operators import HvpMode
from harness.curvature._operators import Preconditioner
from harness.curvature._operators import as_preconditioner
from harness.curvature._operators import hessian_operator
from harness.curvature._operators import hessian_operators
from harness.curvature._operators import hvp
from harness.curvature._operators import loss_and_grad
from harness.curvature._operators import validate_diagonal
from harness.curvature._sharpness import JointSharpness
from harness.curvature._settings import LanczosMethod
from harness.curvature._sharpness import SharpnessFn
from harness.curvature._sharpness import SharpnessResult
from harness.curvature._sharpness import joint_sharpness
from harness.curvature._sharpness import make_sharpness_fn
from harness.curvature._sharpness import sharpness

__all__ = [
    'DiagonalPreconditioner',
    'FlatOperator',
    'HvpMode',
    'JointSharpness',
    'LanczosMethod',
    'LanczosResult',
    'Preconditioner',
    'as_preconditioner',
    'SharpnessFn',
    'SharpnessResult',
    'hessian_operator',
    'hessian_operators',
    'hvp',
    'joint_sharpness',
    'lanczos',
    'loss_and_grad',
    'make_sharpness_fn',
    'sharpness',
    'validate_diagonal',
]
