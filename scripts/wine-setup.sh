#!/usr/bin/env bash
# Makes this Linux machine able to run lab3's Windows build under Wine, for
# the mixed-pair tests (tests/wine_pairs.rs: a Windows server_a or server_b
# under Wine against the native Linux other server). Installs, where
# missing: the x86_64-pc-windows-gnu Rust target, mingw-w64 (the linker and
# C compiler for it) and wine64 (Debian packages, apt-get, as root); makes
# a Wine prefix at target/wine/prefix (or $LAB3_WINEPREFIX); builds the
# shim scripts/wine/bcryptprimitives.c into its system32 (Rust's std needs
# ProcessPrng, which Wine lacks before 8.13); builds the three programs for
# Windows; and checks that server_b.exe starts under Wine.
#
# Where any of that cannot be done, it prints one loud line saying why,
# writes the reason to target/wine/unavailable (the tests print it when they
# skip), and exits 0: the rest of CI goes on. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state=target/wine
prefix="${LAB3_WINEPREFIX:-$PWD/$state/prefix}"
mkdir -p "$state"
rm -f "$state/unavailable"

unavailable() {
    echo "$*" >"$state/unavailable"
    echo
    echo "!!!!!!!! WINE TESTS WILL BE SKIPPED: $* !!!!!!!!"
    echo
    exit 0
}

root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

wine_loader() {
    for w in /usr/lib/wine/wine64 "$(command -v wine64 || true)" "$(command -v wine || true)"; do
        if [ -n "$w" ] && [ -x "$w" ]; then
            echo "$w"
            return 0
        fi
    done
    return 1
}

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64)
wine_loader >/dev/null || need+=(wine64)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to install ${need[*]}"
    echo "scripts/wine-setup.sh: installing ${need[*]}"
    root apt-get update -qq || unavailable "cannot run apt-get (not root, no sudo) to install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        unavailable "apt-get could not install ${need[*]}"
fi
loader="$(wine_loader)" || unavailable "wine64 is not installed"

rustup target list --installed | grep -qx x86_64-pc-windows-gnu ||
    rustup target add x86_64-pc-windows-gnu || unavailable "cannot add the Rust target x86_64-pc-windows-gnu"

# No Mono or Gecko prompts, no debug chatter, no display needed.
export WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
if [ ! -d "$prefix/drive_c/windows/system32" ]; then
    echo "scripts/wine-setup.sh: making the Wine prefix $prefix"
    "$loader" wineboot --init >/dev/null 2>&1 || true
    [ -d "$prefix/drive_c/windows/system32" ] || unavailable "wineboot could not make the prefix $prefix"
fi

dll="$prefix/drive_c/windows/system32/bcryptprimitives.dll"
x86_64-w64-mingw32-gcc -O2 -s -shared -o "$state/bcryptprimitives.dll" \
    scripts/wine/bcryptprimitives.c scripts/wine/bcryptprimitives.def -ladvapi32 ||
    unavailable "mingw-w64 could not build the ProcessPrng shim"
cp "$state/bcryptprimitives.dll" "$dll"
# A Windows process that holds a file open with no sharing (the busy-file test).
x86_64-w64-mingw32-gcc -O2 -s -municode -o "$state/hold.exe" scripts/wine/hold.c ||
    unavailable "mingw-w64 could not build scripts/wine/hold.c"

echo "scripts/wine-setup.sh: building server_a, server_b and lab3 for x86_64-pc-windows-gnu"
cargo build --quiet --workspace --bins --target x86_64-pc-windows-gnu ||
    unavailable "cargo could not build the programs for x86_64-pc-windows-gnu"

exe="${CARGO_TARGET_DIR:-target}/x86_64-pc-windows-gnu/debug/server_b.exe"
if ! out="$("$loader" "$exe" --help 2>&1)" || ! grep -q -- "--listen" <<<"$out"; then
    unavailable "server_b.exe does not start under $loader: $(head -c 300 <<<"$out" | tr '\n' ' ')"
fi
echo "$loader" >"$state/loader"
echo "scripts/wine-setup.sh: ready: $("$loader" --version 2>/dev/null || echo wine), prefix $prefix"
