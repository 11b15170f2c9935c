"""AlgoPerf's `spec`: the names an AlgoPerf JAX submission annotates with.

The enums are the harness's own (`workloads.base`), so that a submission's
`loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY` compares against what
the harness passes. The type aliases are as loose as AlgoPerf's: they
document, they check nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

from submissions import api
from workloads.base import ForwardPassMode
from workloads.base import LossType
from workloads.base import Workload
from workloads.param_types import ParameterType
from workloads.param_types import ShapeTuple

__all__ = ['ForwardPassMode', 'LossType', 'ParameterType', 'ShapeTuple',
           'Workload', 'TrainingCompleteError']

Tensor = Any
Shape = Union[Tuple[int, ...], ShapeTuple]
ParameterKey = str
ParameterShapeTree = Dict[ParameterKey, Any]
ParameterContainer = Dict[ParameterKey, Any]
ParameterTypeTree = Dict[ParameterKey, Any]
RandomState = Any
OptimizerState = Union[Dict[str, Any], Tuple[Any, Any]]
Hyperparameters = Any
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = Tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = Tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]

InitOptimizerFn = Callable[
    [Workload, ParameterContainer, ModelAuxiliaryState, Hyperparameters,
     RandomState], OptimizerState]
UpdateParamsFn = Callable[
    [Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState,
     Hyperparameters, Dict[str, Tensor], LossType, OptimizerState,
     List[Tuple[int, float]], int, RandomState], UpdateReturn]
PrepareForEvalFn = Callable[
    [Workload, ParameterContainer, ParameterTypeTree, ModelAuxiliaryState,
     Hyperparameters, LossType, OptimizerState, List[Tuple[int, float]], int,
     RandomState], UpdateReturn]
DataSelectionFn = Callable[
    [Workload, Iterator[Dict[str, Any]], OptimizerState, ParameterContainer,
     ModelAuxiliaryState, Hyperparameters, int, RandomState],
    Dict[str, Tensor]]
GetBatchSizeFn = Callable[[str], int]


class TrainingCompleteError(api.TrainingComplete):
  """Raised by `update_params` to end training early, as in AlgoPerf."""
