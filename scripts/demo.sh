#!/usr/bin/env bash
# scripts/demo.sh — lab3 on the sample folders, from a fresh clone.
#
# Builds the workspace (release), starts server_b on directory_b/ and
# server_a on directory_a/, waits until both say 'listening on', runs
# ./lab3, and then keeps both servers in the foreground with their output
# prefixed [A] and [B] until Ctrl-C, which stops them both.
#
# Usage: scripts/demo.sh [--port-a N] [--port-b N] [--port-web N] [--once] [-- SERVER FLAGS...]
#   --port-a N   Server A's port (default 6000; 0: the kernel picks a free one)
#   --port-b N   Server B's port (default 6001; 0 as above)
#   --port-web N the web page's port, on Server A (default 6080; 0 as above; off)
#   --once       show the listing, stop the servers and exit (also DEMO_ONCE=1)
#   -- FLAGS     extra flags for both servers, e.g. -- --no-sync
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port_a=6000
port_b=6001
port_web=6080
once="${DEMO_ONCE:-}"
extra=()

usage() { sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --port-a) port_a="${2:?--port-a needs a port}"; shift 2 ;;
        --port-b) port_b="${2:?--port-b needs a port}"; shift 2 ;;
        --port-web) port_web="${2:?--port-web needs a port or off}"; shift 2 ;;
        --once) once=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "demo: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$root"
echo "demo: building (cargo build --release; the first build takes about 3 minutes on 2 idle cores, up to 10 on a busy machine)..."
cargo build --release --quiet --workspace --bins
bin="${CARGO_TARGET_DIR:-$root/target}/release"

logs="$(mktemp -d "${TMPDIR:-/tmp}/lab3-demo.XXXXXX")"
pids=()
cleanup() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping the servers"; exit 130' INT TERM

# start NAME PREFIX ARGS...: starts a server with its output in a log, shows
# that log prefixed, waits for 'listening on ADDR' and sets $addr.
start() {
    local name="$1" prefix="$2" log="$logs/$1.log"
    shift 2
    "$bin/$name" "$@" "${extra[@]}" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    tail -n +1 -f --pid="$pid" "$log" | sed -u "s/^/$prefix /" &
    pids+=("$!")
    local deadline=$((SECONDS + 30))
    addr=""
    until addr="$(sed -n 's/^listening on //p' "$log" | head -n 1)"; [[ -n "$addr" ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            echo "demo: $name did not start; its output:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

start server_b "[B]" --dir directory_b --listen "127.0.0.1:$port_b" --server-a "127.0.0.1:$port_a"
b_addr="$addr"
http=off
[[ "$port_web" != off ]] && http="127.0.0.1:$port_web"
start server_a "[A]" --dir directory_a --listen "127.0.0.1:$port_a" --peer "$b_addr" --http "$http"
a_addr="$addr"
web=""
if [[ "$http" != off ]]; then
    for _ in $(seq 20); do
        web="$(sed -n 's/^web page at //p' "$logs/server_a.log" | head -n 1)"
        [[ -n "$web" ]] && break
        sleep 0.1
    done
fi

echo
echo "demo: ./lab3 --server $a_addr"
status=0
./lab3 --server "$a_addr" || status=$?
echo

if [[ -n "$once" ]]; then
    exit "$status"
fi

echo "demo: server A on $a_addr, server B on $b_addr. Try, in another terminal:"
echo "        ./lab3 --server $a_addr --json"
echo "        ./lab3 --server $a_addr,$b_addr    # lists from B when A is down"
[[ -n "$web" ]] && echo "      or open the web page: $web"
echo "      Ctrl-C stops both servers."
# Until Ctrl-C, or until either server stops by itself.
wait -n "${pids[0]}" "${pids[2]}" || true
echo "demo: a server stopped; stopping the other" >&2
exit 1
