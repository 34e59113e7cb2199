#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets) for a while.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    default: 120 s, every target
#
# cargo-fuzz needs a nightly toolchain (it builds with -Zsanitizer=address);
# this script uses `cargo +nightly` and installs cargo-fuzz if it is missing.
# CI does not run it: the proptest suite (common/tests/properties.rs)
# checks the same properties on every `cargo test`.
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-120}"
shift || true

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    extra=()
    [ -f "fuzz/${t%%_*}.dict" ] && extra+=("-dict=${t%%_*}.dict")
    echo "== fuzzing $t for ${secs}s"
    # Runs from fuzz/, so the corpus and seed paths are relative to it.
    (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 "${extra[@]}")
done
