#!/usr/bin/env python3
"""Turn run.sh's raw measurements into a markdown report.

Usage: report.py META CELLS CPU IDLE CLK_TCK
  META   tab-separated "key<TAB>value..." lines (command, versions, workloads, notes)
  CELLS  round, workload, target, test, req/s, p50 ms, p99 ms, max ms (one line per redis-benchmark test)
  CPU    round, workload, target, proxy ticks (empty for direct), redis ticks, requests
  IDLE   target, RSS KiB before, RSS KiB after one PING per client, client count,
         RSS KiB with the clients connected and idle (no command yet)
With several rounds, throughput and latencies are medians over rounds; CPU is
total ticks over total requests.
"""

import collections
import statistics
import sys

TARGET_ORDER = ["direct", "respguard", "respguard_batch", "twemproxy", "twemproxy_batch"]
# The process behind each target: a _batch target is the same program as its
# base target, under SCHED_BATCH.
PROCESS = {"direct": "redis-server", "respguard": "respguard", "respguard_batch": "respguard",
           "twemproxy": "nutcracker", "twemproxy_batch": "nutcracker"}
LABEL = {"respguard": "respguard (default scheduling)",
         "respguard_batch": "respguard (sched_policy: batch)",
         "twemproxy": "twemproxy (default scheduling)",
         "twemproxy_batch": "twemproxy (SCHED_BATCH: chrt -b 0)"}
# The goal tables, in this order; a pair missing from the data is skipped.
GOAL_PAIRS = [("respguard", "twemproxy"), ("respguard_batch", "twemproxy"),
              ("respguard_batch", "twemproxy_batch")]
# The performance goals for respguard against twemproxy, measured in the same
# run: at least its throughput, at most its CPU (and Redis's) per request, its
# p50 at one client; per-client memory at most MAX_IDLE_KIB idle and at most
# Redis's own after a command.
MIN_THROUGHPUT_RATIO = 1.0
MAX_PROXY_CPU_RATIO = 1.0
MAX_REDIS_CPU_RATIO = 1.0
MAX_P50_RATIO_C1 = 1.0
MAX_IDLE_KIB = 2.0
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
    for key in ("date", "machine", "load", "pinning", "scheduling", "redis", "twemproxy", "respguard",
                "tests"):
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


def targets_table(summary, workloads, p50):
    present = {t for _, t in summary}
    pairs = [(a, b) for a, b in GOAL_PAIRS if a in present and b in present]
    if not pairs:
        return []
    out = ["", "## Goals: respguard against twemproxy, same run"]
    for a, b in pairs:
        out += pair_table(a, b, summary, workloads, p50)
    return out


def pair_table(a, b, summary, workloads, p50):
    """The goals for target a (a respguard) against target b (a twemproxy)."""
    out = ["", f"### {LABEL[a]} against {LABEL[b]}", "",
           f"| workload | throughput ratio (>= {MIN_THROUGHPUT_RATIO:.2f}) "
           f"| proxy CPU ratio (<= {MAX_PROXY_CPU_RATIO:.2f}) "
           f"| Redis CPU ratio (<= {MAX_REDIS_CPU_RATIO:.2f}) |", "|---|---|---|---|"]
    for w in workloads:
        rg, tw = summary[(w, a)], summary[(w, b)]
        ratios = [rg[i] / tw[i] if tw[i] else float("nan") for i in range(3)]
        marks = [ratios[0] >= MIN_THROUGHPUT_RATIO, ratios[1] <= MAX_PROXY_CPU_RATIO,
                 ratios[2] <= MAX_REDIS_CPU_RATIO]
        cells = [f"{fmt(r)} {'ok' if ok else 'MISSED'}" if r == r else "n/a (too few CPU ticks)"
                 for r, ok in zip(ratios, marks)]
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    if ("c1_p1", a) in p50 and ("c1_p1", b) in p50:
        rg, tw = p50[("c1_p1", a)], p50[("c1_p1", b)]
        r = rg / tw if tw else float("nan")
        out += ["", f"p50 at `c1_p1` (mean of the tests' medians): {a} {rg:.3f} ms, {b} "
                f"{tw:.3f} ms, ratio {fmt(r)} (<= {MAX_P50_RATIO_C1:.2f}) "
                f"{'ok' if r <= MAX_P50_RATIO_C1 else 'MISSED'}."]
    return out


def idle_table(idle):
    if not idle:
        return []
    count = int(idle[0][3])
    out = ["", f"## Memory with {count:,} clients", "",
           "RSS of the server process, fresh (measured before the load cells): before, with the "
           "clients connected and idle (no command sent), and after each sent one PING.", "",
           "| target | process | RSS before (MiB) | idle (MiB) | after a PING (MiB) "
           "| KiB per idle client | KiB per client after a PING |",
           "|---|---|---|---|---|---|---|"]
    per = {}
    for t, before, after, n, *rest in idle:
        b, a, n = int(before), int(after), int(n)
        i = int(rest[0]) if rest else None  # older runs measured only after a PING
        per[t] = ((i - b) / n if i is not None else float("nan"), (a - b) / n)
        idle_mib = f"{i / 1024:.1f}" if i is not None else "n/a"
        out.append(f"| {t} | {PROCESS.get(t, t)} | {b / 1024:.1f} | {idle_mib} | {a / 1024:.1f} "
                   f"| {fmt(per[t][0], 1)} | {per[t][1]:.1f} |")
    if "respguard" in per and "direct" in per:
        rg, rd = per["respguard"], per["direct"]
        idle_mark = "n/a" if rg[0] != rg[0] else "ok" if rg[0] <= MAX_IDLE_KIB else "MISSED"
        out += ["", f"Goals: idle {fmt(rg[0], 1)} KiB per client (<= {MAX_IDLE_KIB:.1f}) "
                f"{idle_mark}; after a PING {rg[1]:.1f} KiB "
                f"(<= Redis's {rd[1]:.1f}) {'ok' if rg[1] <= rd[1] else 'MISSED'}."]
    return out


def p50_c1(cells):
    """Median p50 per (workload, target), averaged over the tests."""
    out = {}
    for t in TARGET_ORDER:
        vals = [statistics.median(x[1] for x in samples)
                for (w, tt, _), samples in cells.items() if w == "c1_p1" and tt == t]
        if vals:
            out[("c1_p1", t)] = statistics.mean(vals)
    return out


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    meta, cells, cpu, idle = load(*sys.argv[1:5])
    clk_tck = int(sys.argv[5])
    lines = header(meta)
    table, summary, workloads = throughput_table(meta, cells, cpu, clk_tck)
    lines += table
    lines += targets_table(summary, workloads, p50_c1(cells))
    lines += idle_table(idle)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
