#!/usr/bin/env bash
# The RecUser-v0 SB3 grid of benchmarks/results/recuser-sb3-cpu: every (algorithm, policy)
# pair with 3 training seeds, one algorithm at a time, then the rows and curves. Started again
# after a kill (or in a new session), it skips the finished runs and resumes the running one.
#   nohup bash benchmarks/results/recuser-sb3-cpu/grid.sh > /tmp/recuser-sb3.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/recuser-sb3-cpu
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
for algo in sb3_contrib:MaskablePPO PPO DQN A2C; do
  .venv/bin/python -m benchmarks.studies.recuser_sb3 --out "$OUT" --algos "$algo" \
    --policies item-le item mlp --only-runs
done
.venv/bin/python -m benchmarks.studies.recuser_sb3 --out "$OUT"
