"""The harness: the timed training loop, run records and curvature probes."""
