#!/usr/bin/env bash
# The long kill -9 soak (tests/soak.rs): a random workload on both sides
# while either server is killed with SIGKILL at random points and restarted;
# the folders must converge to exactly what was last written to each path,
# with no partial or temporary file along the way.
#
#   scripts/soak.sh [CYCLES] [MINUTES]     default: 200 cycles, at most 15 minutes
#
# Environment: LAB3_SOAK_SEED replays a workload (printed at the start);
# LAB3_SOAK_CHECK_EVERY (default 10) is how often (in cycles) the run stops
# to wait for convergence and compare both folders with the model.
# Runs a release build; the output ends with a summary line 'soak: seed ...:
# N cycles ...' for bench/RESULTS.md. CI runs the same test with 3 cycles.
set -euo pipefail
cd "$(dirname "$0")/.."

export LAB3_SOAK_CYCLES="${1:-200}"
export LAB3_SOAK_MINUTES="${2:-15}"
export LAB3_SOAK_CHECK_EVERY="${LAB3_SOAK_CHECK_EVERY:-10}"
exec cargo test --release --test soak -- --nocapture --test-threads 1
