"""Flax linen models of the fixed workloads."""
