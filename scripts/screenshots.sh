#!/usr/bin/env bash
# scripts/screenshots.sh — pictures of Server A's web page for docs/:
# a laptop's and a phone's width, light and dark, each with a locked file
# holding an update from Server B and a 1 GiB transfer in progress.
#
# Installs headless chromium first if it can (scripts/setup-browser.sh),
# then runs the ignored `screenshots` test of tests/web_screenshots.rs, which
# writes docs/web-desktop.png, docs/web-phone.png and their -dark twins,
# and docs/web-versions.png (the versions of one file, kept at both sides).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-browser.sh
cargo test --test web_screenshots -- --ignored --exact screenshots --nocapture
ls -l docs/web-*.png
