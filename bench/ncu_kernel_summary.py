#!/usr/bin/env python3
"""Where a forward's GPU time goes: sums `ncu --metrics gpu__time_duration.sum --csv` by kernel.

Usage: bench/ncu_kernel_summary.py NCU_CSV [--skip-first N | --last-half] [--top K]
--skip-first drops the first N kernel launches; --last-half keeps the second half (the timed
forward of `attention_block_bench --runs 1`, after its identical warm-up one). Prints a
Markdown table: kernel (demangled name, shortened), launches, total ms, share.
"""
import argparse
import collections
import csv
import re
import sys


def short(name: str) -> str:
    name = re.sub(r"^void ", "", name)
    # Template arguments say which instantiation; keep two levels of them.
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
            if depth <= 2:
                out.append("<")
            continue
        if ch == ">":
            depth -= 1
            if depth <= 1:
                out.append(">")
            continue
        if depth <= 2:
            out.append(ch)
    # The argument list goes after the template arguments are cut down.
    return re.sub(r"\(.*$", "", "".join(out))[:110]


MS_PER_UNIT = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--skip-first", type=int, default=0)
    ap.add_argument("--last-half", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    with open(a.csv, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    launches = {}
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "")
        if unit not in MS_PER_UNIT:
            print(f"launch {r['ID']}: unknown time unit {unit!r}", file=sys.stderr)
            return 1
        v = float(r["Metric Value"].replace(",", ""))
        launches[int(r["ID"])] = (short(r["Kernel Name"]), v * MS_PER_UNIT[unit])
    ids = sorted(launches)
    ids = ids[len(ids) // 2:] if a.last_half else ids[a.skip_first:]
    if not ids:
        print("no kernel launches", file=sys.stderr)
        return 1
    total = collections.defaultdict(float)
    count = collections.Counter()
    for i in ids:
        name, ms = launches[i]
        total[name] += ms
        count[name] += 1
    grand = sum(total.values())
    print(f"{len(ids)} launches, {grand:.2f} ms of kernel time\n")
    print("| kernel | launches | ms | share |")
    print("|---|---|---|---|")
    for name, ms in sorted(total.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"| `{name}` | {count[name]} | {ms:.2f} | {100 * ms / grand:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
