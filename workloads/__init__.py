"""Fixed workloads: models, data, losses, targets and budgets."""

from workloads.base import BatchRegime, DataConfig, Tier, Workload
from workloads.registry import get, names

__all__ = ['BatchRegime', 'DataConfig', 'Tier', 'Workload', 'get', 'names']
