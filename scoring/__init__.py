"""Scoring: reads run records and turns them into scores and reports.

Modules:
  scores: time-to-target per run, AlgoPerf tuning aggregation (fastest trial
    per study, median over studies), performance ratios, performance profiles
    and the benchmark score.
  aeos: adaptive-edge-of-stability statistics of one run's curvature probes.
  curves: a run's training curve (loss and target metric against time and
    steps).
  run_set, run_names: which runs count, under which names, and what is
    skipped and why.
  leaderboard: `compute_leaderboard`, the statistics of a set of experiment
    directories, computed once (`Leaderboard`).
  tables, figures (with figures_curves), run_figure, run_pages,
    report_markdown, report_html: views of those statistics.
  report_files: `build_report`, which writes every view into a report
    directory.
  comparison: what changed between two reports.
  tensorboard: TensorBoard event files written from run records.
  main_job: the main job, which trains with the harness and then scores what
    it wrote: the one module here that calls the runner.

Entry points, which only parse flags: `python -m scoring.report`,
`python -m scoring.compare`, `python -m scoring.run_figure`,
`python -m scoring.tensorboard`, `python -m scoring.demo`.

Scoring reads runs only through `harness.records` and never parses text
logs.
"""
