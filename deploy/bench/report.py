#!/usr/bin/env python3
"""Turn run.sh's raw measurements into a markdown report.

Usage: report.py META CELLS CPU IDLE CLK_TCK
  META   tab-separated "key<TAB>value..." lines (command, versions, workloads, notes)
  CELLS  round, workload, target, test, req/s, p50 ms, p99 ms, max ms (one line per redis-benchmark test)
  CPU    round, workload, target, proxy ticks (empty for direct), redis ticks, requests
  IDLE   target, RSS KiB before, RSS KiB with the idle clients, idle client count
With several rounds, throughput and latencies are medians over rounds; CPU is
total ticks over total requests.
"""

import collections
import statistics
import sys

TARGET_ORDER = ["direct", "respguard", "twemproxy"]
# Issue 2's targets for respguard against twemproxy, measured in the same run.
MIN_THROUGHPUT_RATIO = 0.80
MAX_PROXY_CPU_RATIO = 1.5
MAX_REDIS_CPU_RATIO = 1.0
STALL_MS = 1000.0


def rows(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def load(meta_path, cells_path, cpu_path, idle_path):
    meta = collections.defaultdict(list)
    for fields in rows(meta_path):
        meta[fields[0]].append(fields[1:])
    cells = collections.defaultdict(list)  # (workload, target, test) -> [(rps, p50, p99, max)]
    for _, w, t, test, rps, p50, p99, *rest in rows(cells_path):
        cells[(w, t, test)].append((float(rps), float(p50), float(p99), float(rest[0]) if rest else 0.0))
    cpu = collections.defaultdict(lambda: [0, 0, 0])  # (workload, target) -> ticks, ticks, reqs
    for _, w, t, proxy, redis, reqs in rows(cpu_path):
        acc = cpu[(w, t)]
        acc[0] += int(proxy or 0)
        acc[1] += int(redis)
        acc[2] += int(reqs)
    idle = rows(idle_path)
    return meta, cells, cpu, idle


def median_cell(samples):
    return tuple(statistics.median(s[i] for s in samples) for i in range(3))


def per_million(ticks, reqs, clk_tck):
    return ticks / clk_tck / reqs * 1e6 if reqs else float("nan")


def fmt(x, digits=2):
    return "n/a" if x != x else f"{x:,.{digits}f}"


def header(meta):
    out = ["# respguard load comparison", ""]
    out.append(f"Command: `{meta['command'][0][0].strip()}`  ")
    for key in ("date", "machine", "load", "pinning", "redis", "twemproxy", "respguard", "tests"):
        if key in meta:
            out.append(f"{key.capitalize()}: {meta[key][0][0]}  ")
    out.append("")
    out.append("Workloads (redis-benchmark arguments, -n): " + "; ".join(
        f"`{name}` = `{args} -n {n}`" for name, args, n in meta["workload"]) + ".")
    if meta["quick"][0][0] == "1":
        out += ["", "**--quick run: tiny -n values, a smoke test of the script, not a measurement.**"]
    for (note,) in meta.get("note", []):
        out += ["", f"Note: {note}"]
    return out


def throughput_table(meta, cells, cpu, clk_tck):
    workloads = [w for w, _, _ in meta["workload"]]
    tests = meta["tests"][0][0].upper().split(",")
    targets = [t for t in TARGET_ORDER if any(k[1] == t for k in cells)]
    cols = ["workload", "target"] + [f"{t} req/s" for t in tests] + ["vs direct"]
    cols += [f"{t} p50 / p99 ms" for t in tests] + ["proxy CPU s / 1M req", "Redis CPU s / 1M req"]
    out = ["", "## Throughput, latency and CPU", "", "| " + " | ".join(cols) + " |",
           "|" + "---|" * len(cols)]
    summary = {}
    for w in workloads:
        for t in targets:
            med = {test: median_cell(cells[(w, t, test)]) for test in tests if cells.get((w, t, test))}
            mean_rps = statistics.mean(m[0] for m in med.values()) if med else float("nan")
            proxy_ticks, redis_ticks, reqs = cpu[(w, t)]
            proxy_cpu = per_million(proxy_ticks, reqs, clk_tck) if t != "direct" else float("nan")
            redis_cpu = per_million(redis_ticks, reqs, clk_tck)
            summary[(w, t)] = (mean_rps, proxy_cpu, redis_cpu)
            direct = summary.get((w, "direct"), (float("nan"),))[0]
            row = [w, t] + [fmt(med[x][0], 0) if x in med else "n/a" for x in tests]
            row.append(f"{mean_rps / direct:.2f}x" if direct == direct and direct else "n/a")
            row += [f"{fmt(med[x][1], 3)} / {fmt(med[x][2], 3)}" if x in med else "n/a" for x in tests]
            row += ["-" if t == "direct" else fmt(proxy_cpu), fmt(redis_cpu)]
            out.append("| " + " | ".join(row) + " |")
    out += stalls(cells)
    return out, summary, workloads


def stalls(cells):
    """Lists cells whose slowest request took over STALL_MS: a stall that
    p99 hides but req/s shows."""
    slow = [(w, t, test, max(s[3] for s in samples)) for (w, t, test), samples in sorted(cells.items())
            if max(s[3] for s in samples) > STALL_MS]
    if not slow:
        return []
    return ["", f"Stalls (slowest request over {STALL_MS / 1000:.0f} s): " + "; ".join(
        f"{t} {w} {test} {m / 1000:.1f} s" for w, t, test, m in slow) + "."]


def targets_table(summary, workloads):
    if not any(k[1] == "respguard" for k in summary) or not any(k[1] == "twemproxy" for k in summary):
        return []
    out = ["", "## Issue 2 targets: respguard against twemproxy, same run", "",
           f"| workload | throughput ratio (>= {MIN_THROUGHPUT_RATIO:.2f}) "
           f"| proxy CPU ratio (<= {MAX_PROXY_CPU_RATIO:.1f}) "
           f"| Redis CPU ratio (<= {MAX_REDIS_CPU_RATIO:.1f}) |", "|---|---|---|---|"]
    for w in workloads:
        rg, tw = summary[(w, "respguard")], summary[(w, "twemproxy")]
        ratios = [rg[i] / tw[i] if tw[i] else float("nan") for i in range(3)]
        marks = [ratios[0] >= MIN_THROUGHPUT_RATIO, ratios[1] <= MAX_PROXY_CPU_RATIO,
                 ratios[2] <= MAX_REDIS_CPU_RATIO]
        cells = [f"{fmt(r)} {'ok' if ok else 'MISSED'}" if r == r else "n/a (too few CPU ticks)"
                 for r, ok in zip(ratios, marks)]
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    return out


def idle_table(idle):
    if not idle:
        return []
    count = idle[0][3]
    out = ["", f"## RSS with {int(count):,} idle clients", "",
           "| target | process | RSS before (MiB) | RSS with idle clients (MiB) | KiB per client |",
           "|---|---|---|---|---|"]
    process = {"direct": "redis-server", "respguard": "respguard", "twemproxy": "nutcracker"}
    for t, before, after, n in idle:
        b, a = int(before), int(after)
        out.append(f"| {t} | {process.get(t, t)} | {b / 1024:.1f} | {a / 1024:.1f} | {(a - b) / int(n):.1f} |")
    return out


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    meta, cells, cpu, idle = load(*sys.argv[1:5])
    clk_tck = int(sys.argv[5])
    lines = header(meta)
    table, summary, workloads = throughput_table(meta, cells, cpu, clk_tck)
    lines += table
    lines += targets_table(summary, workloads)
    lines += idle_table(idle)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
