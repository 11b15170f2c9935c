"""Scoring: reads run records and turns them into scores and reports.

Modules:
  scores: time-to-target per run, AlgoPerf tuning aggregation (fastest trial
    per study, median over studies), performance ratios, performance profiles
    and the benchmark score.
  aeos: adaptive-edge-of-stability statistics of one run's curvature probes.
  stats: `compute_leaderboard`, the statistics of a set of experiment
    directories, computed once (`Leaderboard`).
  tables, figures, report_markdown, report_html: views of those statistics.
  leaderboard: `build_report`, which writes every view into a report
    directory (`python -m scoring.leaderboard`).
  compare: what changed between two reports (`python -m scoring.compare`).

Scoring reads runs only through `harness.records`; it never imports the
training runner and never parses text logs.
"""
