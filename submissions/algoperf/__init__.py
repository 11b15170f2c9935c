"""AlgoPerf's `algoperf.*` helper modules, for AlgoPerf-form submissions.

An AlgoPerf JAX submission starts with `from algoperf import spec` and
`from algoperf import jax_sharding_utils`. So that such a file runs here as
it is, `submissions.loading` makes this package importable under the name
`algoperf` while it imports the file, and only then: it is never installed
as a top-level package, and a real `algoperf` that the user has installed is
used instead of it. The module keeps its own references to what it imported,
so it works after the name is gone.

What it provides (`MODULES`): `spec` (the API's enums, type aliases and
`Workload`, which is `workloads.base.Workload`), `jax_sharding_utils`
(meshes and shardings over the local devices), `param_utils` (parameter
shapes) and `random_utils` (the JAX random functions). The torch helpers
(`pytorch_utils`) are not provided.
"""

from __future__ import annotations

# The submodules an AlgoPerf-form module may import, by their names under
# `algoperf`.
MODULES: tuple[str, ...] = ('spec', 'jax_sharding_utils', 'param_utils',
                            'random_utils')
