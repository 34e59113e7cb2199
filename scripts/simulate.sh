#!/usr/bin/env bash
# The deterministic simulation of the sync core (common/tests/simulation):
# N seeded runs of two cores against fake folders and a fake link, each
# checked for convergence, versions kept, lock queues replayed once and in
# order, locked paths untouched and no echo. Release build, both cores busy.
#
#   scripts/simulate.sh [N] [FIRST]     default: 100000 seeds from 0
#
# Prints seeds/s; a failing seed prints its violations, the one command
# that replays it, and a shrunk schedule. Environment: LAB3_SIM_THREADS
# (default 2), LAB3_SIM_STRICT=1 (known, unfixed bugs count too: see
# common/tests/simulation/known.rs), LAB3_SIM_CASE=1 (setups where either
# folder may fold letter case, as on macOS and Windows; the quick run in
# `cargo test -p common --test simulation` takes a third as many of those),
# LAB3_SIM_NFD=1 (users also pick names that differ only in Unicode
# normalization, and either folder may take them for one, as on macOS;
# other schedules for the same seeds; may be combined with LAB3_SIM_CASE=1).
set -euo pipefail
cd "$(dirname "$0")/.."

export LAB3_SIM_SEEDS="${1:-100000}"
export LAB3_SIM_FIRST="${2:-0}"
exec cargo test --release -p common --test simulation -- many --ignored --nocapture
