#!/usr/bin/env bash
# Lints the whole workspace, tests included, for the three targets lab3
# ships on: Linux (native), Windows (x86_64-pc-windows-gnu) and macOS
# (x86_64-apple-darwin), with clippy's warnings as errors. It only checks
# (no link), so no Windows or macOS machine is needed, but one C
# compiler per target is: `ring` (TLS) compiles C in its build script.
#   - Windows: mingw-w64's gcc (Debian's `gcc-mingw-w64-x86-64`, apt-get).
#   - macOS: no SDK can be installed here, so the C compiler is Zig's
#     `zig cc -target x86_64-macos`, which carries the macOS libc headers
#     (PyPI's `ziglang` package, installed with pip into ~/.cache).
# Installs what is missing (rustup targets, mingw-w64, ziglang); run from
# anywhere:  bash scripts/cross-check.sh [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-gnu x86_64-pc-windows-gnu x86_64-apple-darwin)

root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        echo "scripts/cross-check.sh: not root and no sudo: cannot run $*" >&2
        return 1
    fi
}

zig_dir="${LAB3_ZIG_DIR:-$HOME/.cache/lab3-ziglang}"

for t in "${targets[@]}"; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    case "$t" in
    x86_64-pc-windows-gnu)
        if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
            root apt-get update -qq
            DEBIAN_FRONTEND=noninteractive root apt-get install -y -qq --no-install-recommends gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64
        fi
        ;;
    x86_64-apple-darwin)
        if [ ! -x "$zig_dir/ziglang/zig" ]; then
            python3 -m pip install --quiet --disable-pip-version-check --target "$zig_dir" ziglang
        fi
        # cc-rs takes one program as the compiler: a wrapper that calls zig
        # cc for macOS, without cc-rs's --target=x86_64-apple-macosx (a
        # clang spelling zig does not take).
        wrap="target/cross/zig-cc-x86_64-macos"
        mkdir -p target/cross
        cat >"$wrap" <<WRAP
#!/bin/sh
for a; do
    shift
    case "\$a" in --target=*) ;; *) set -- "\$@" "\$a" ;; esac
done
exec "$zig_dir/ziglang/zig" cc -target x86_64-macos "\$@"
WRAP
        chmod +x "$wrap"
        export CC_x86_64_apple_darwin="$PWD/$wrap"
        export AR_x86_64_apple_darwin="${AR_x86_64_apple_darwin:-ar}"
        ;;
    esac
    echo "==> cargo clippy --target $t"
    cargo clippy --workspace --all-targets --target "$t" -- -D warnings
done
echo "scripts/cross-check.sh: clippy clean for ${targets[*]}"
