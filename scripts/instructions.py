#!/usr/bin/env python3
"""Row 2 of the sync bench (10,000 files of 4 KiB in 100 folders, from A into
an empty B), counted in user-space instructions instead of timed.

    scripts/instructions.py OLD_BINS NEW_BINS [--top N]

OLD_BINS and NEW_BINS are folders holding `server_a` and `server_b` (e.g. a
`cargo build --profile dist` of each commit, copied aside). Each pair runs
once under valgrind's cachegrind (`--cache-sim=no`: instructions only), and
the script prints each server's instructions, the ratio, and the functions
whose instructions changed most. Needs valgrind (`apt-get install valgrind`)
and python3; runs in about a minute.

Why: on a shared 2-core machine the bench's row 2 moves by 20-50% between
runs, while an instruction count repeats within about 1% (same build, same
tree; the tree is made anew each run, which moves it by a few per cent). It
counts user space only: the kernel's part (writes, renames, stats, the
socket) is about two thirds of row 2's CPU, and the same for both engines
where the system calls are the same (compare with `strace -c -f`). It says
where the CPU goes; the timed bench stays the verdict.
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile


def make_tree(root):
    for d in range(100):
        folder = os.path.join(root, f"d{d:03}")
        os.makedirs(folder)
        for f in range(100):
            with open(os.path.join(folder, f"f{f:03}.dat"), "wb") as out:
                out.write(os.urandom(4096))


def run_pair(bins, src, work, n=10000):
    """One row-2 run of the pair in `bins` under cachegrind; returns the
    two output files (A's, B's)."""
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    shutil.copytree(src, a)
    os.makedirs(b)
    outs = [os.path.join(work, f"cg.{s}") for s in "ab"]
    env = dict(os.environ, NO_COLOR="1", LAB3_BENCH_NO_FSYNC="1")
    env.pop("LAB3_TOKEN", None)
    grind = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    pb = subprocess.Popen(
        grind + [f"--cachegrind-out-file={outs[1]}", f"{bins}/server_b", "--dir", b,
                 "--state-dir", os.path.join(work, "sb"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    addr = None
    for line in pb.stdout:
        if line.startswith("listening on "):
            addr = line.split()[-1]
            break
    if addr is None:
        sys.exit(f"{bins}/server_b did not start")
    pa = subprocess.Popen(
        grind + [f"--cachegrind-out-file={outs[0]}", f"{bins}/server_a", "--dir", a,
                 "--state-dir", os.path.join(work, "sa"), "--listen", "127.0.0.1:0",
                 "--peer", addr, "--http", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    got = 0
    for line in pb.stdout:
        f = line.split()
        if len(f) >= 3 and f[1] == "A->B" and f[2] == "created":
            got += 1
            if got >= n:
                break
    # A clean exit, so that cachegrind writes its counts.
    for p in (pa, pb):
        p.send_signal(2)
    for p in (pa, pb):
        p.wait(timeout=120)
    if got < n:
        sys.exit(f"{bins}: only {got} of {n} files arrived")
    return outs


def per_function(cg_file):
    out = subprocess.run(["cg_annotate", "--threshold=0", cg_file],
                         capture_output=True, text=True, check=True).stdout
    counts, on = collections.Counter(), False
    for line in out.splitlines():
        if "file:function" in line:
            on = True
            continue
        if on and counts and line.startswith("---"):
            break  # the function summary ends; annotated sources follow
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$", line)
        if not on or not m:
            continue
        fn = m.group(2).split(":", 1)[-1]
        fn = re.sub(r"<[^<>]*>", "", fn)[:100]
        counts[fn] += int(m.group(1).replace(",", ""))
    return counts


def main():
    args = sys.argv[1:]
    top = 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        src = os.path.join(tmp, "src")
        make_tree(src)
        counts, files = {}, {}
        for name, bins in zip(("old", "new"), args):
            work = os.path.join(tmp, name)
            os.makedirs(work)
            for side, f in zip("AB", run_pair(bins, src, work)):
                counts[name, side] = per_function(f)
                files[name, side] = f
        total = {k: sum(v.values()) for k, v in counts.items()}
        for (name, side), f in files.items():
            with open(f) as cg:
                total[name, side] = next(int(l.split()[1]) for l in cg if l.startswith("summary:"))
        print("user-space instructions, 10,000 files of 4 KiB from A into an empty B")
        for side in "AB":
            o, n = total["old", side], total["new", side]
            print(f"  server {side}: old {o / 1e6:8.1f} M  new {n / 1e6:8.1f} M  new/old {n / o:.3f}")
        o = total["old", "A"] + total["old", "B"]
        n = total["new", "A"] + total["new", "B"]
        print(f"  both:     old {o / 1e6:8.1f} M  new {n / 1e6:8.1f} M  new/old {n / o:.3f}")
        for side in "AB":
            old, new = counts["old", side], counts["new", side]
            keys = sorted(set(old) | set(new), key=lambda k: -abs(new[k] - old[k]))
            print(f"server {side}, the functions that changed most (exclusive, M):")
            for k in keys[:top]:
                print(f"  {(new[k] - old[k]) / 1e6:+8.1f}  old {old[k] / 1e6:7.1f}  new {new[k] / 1e6:7.1f}  {k}")


if __name__ == "__main__":
    main()
