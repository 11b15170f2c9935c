#!/usr/bin/env bash
# Every baseline in the main job's setting: the paper's FC network on 2,000
# bundled Fashion-MNIST images, MSE loss, 400 full-batch steps, probed every
# 20 steps (python -m scoring.demo), at the learning rate listed beside it;
# then one report over all of them, whose AEoS table RESULTS.md shows.
#
#   scripts/all_baselines_at_aeos.sh [EXPERIMENT_DIR] [REPORT_DIR]
#
# Run from the repository root with the project's environment active (or
# PYTHON=.venv/bin/python). About 15 minutes on two CPU cores.
set -euo pipefail
EXPERIMENT_DIR=${1:-runs/all_baselines}
REPORT_DIR=${2:-reports/all_baselines}
PYTHON=${PYTHON:-python}

# name, learning rate. The adaptive methods share Adam's η = 2e-4 (the main
# job's). Without a preconditioner: GD's η puts its threshold at 40, near
# the network's sharpness after a few steps; the momentum methods' at 100
# (at 40 their effective step η / (1 − β) is ten times GD's, and they
# diverge within 30 steps). Padam and Adagrad, whose P is far larger than
# Adam's, get their own defaults' order; Lion and Muon have no threshold.
while read -r name learning_rate; do
  echo "== $name (η = $learning_rate)"
  "$PYTHON" -m scoring.demo --submission="$name" \
      --learning_rate="$learning_rate" --experiment_dir="$EXPERIMENT_DIR" \
      --quiet
done <<'LIST'
gd 0.05
heavy_ball 0.038
nesterov 0.0136
heavy_ball_ema 0.38
rmsprop 2e-4
adagrad 1e-2
adam 2e-4
adam_nobc 2e-4
adamw 2e-4
frozen_adam 2e-4
amsgrad 2e-4
padam 5e-3
adafactor 2e-4
nadam 2e-4
nadamw 2e-4
slimadam 2e-4
shampoo 2e-4
soap 2e-4
schedule_free_adamw 2e-4
lion 1e-4
muon 2e-3
LIST

"$PYTHON" -m scoring.report --experiment_dirs="$EXPERIMENT_DIR" \
    --out="$REPORT_DIR"
