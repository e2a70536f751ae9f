#!/usr/bin/env bash
# The long form of tests/pipeline_kill.rs: `phm run` killed with SIGKILL at
# POINTS (default 200) points spread evenly over a clean run, each followed
# by a rerun that must publish the clean run's outputs byte for byte and
# leave the store's data the clean run's. Prints the points, the wall time
# and the outcome; append the line to benches/RESULTS.md by hand with the
# commit. It uses the debug build `cargo test` makes (no second
# DataFusion build).
#
#   benches/pipeline_kill.sh [POINTS]
set -euo pipefail
cd "$(dirname "$0")/.."
points="${1:-200}"
start=$(date +%s)
PHM_KILL_POINTS="$points" cargo test --test pipeline_kill -- --exact \
  a_killed_run_publishes_nothing_half_done_and_a_rerun_equals_a_clean_run
end=$(date +%s)
echo "pipeline_kill: ${points} SIGKILL points, each rerun equal to a clean run; $((end - start)) s wall (commit $(git rev-parse --short HEAD), $(nproc) cores)"
