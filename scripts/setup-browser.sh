#!/usr/bin/env bash
# scripts/setup-browser.sh — installs headless Chromium and chromedriver
# (Debian's `chromium` and `chromium-driver`) for the web page's browser
# tests (tests/web_page.rs, tests/web_access.rs) and scripts/screenshots.sh.
#
# Does nothing when both are already there. Needs apt-get and root; where
# either is missing it says so and exits 0: the browser tests then skip,
# each printing why.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if have chromedriver && { have chromium || have chromium-browser; }; then
    echo "setup-browser: chromium and chromedriver are installed"
    exit 0
fi
if ! have apt-get || [[ "$(id -u)" != 0 ]]; then
    echo "setup-browser: cannot install chromium and chromium-driver here (needs apt-get as root);" \
        "the browser tests will skip" >&2
    exit 0
fi
echo "setup-browser: installing chromium and chromium-driver (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core >/dev/null; }; then
    echo "setup-browser: apt-get could not install chromium; the browser tests will skip" >&2
    exit 0
fi
echo "setup-browser: $(chromium --version 2>/dev/null || true); $(chromedriver --version 2>/dev/null | head -1)"
