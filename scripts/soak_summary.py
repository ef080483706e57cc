#!/usr/bin/env python3
"""The verdict of a soak (scripts/soak.sh): reads the per-second CSV of server samples and
loadgen's JSON report, merges loadgen's per-second latency into the CSV, prints the figures
(RSS, fds, buffered bytes, latency over time, what the churn met) and exits 1 if the soak
failed:

- RSS at the end of the churn (median of its last 5 samples) more than 10 % above its level
  after warm-up (median of the samples within 2 s of --rss-warmup-s into the churn);
- the server's open fds not back to their baseline after the churn stopped (a leak);
- a stable subscriber lost (or got twice) a message;
- loadgen's run failed (its `why` lines are printed: e.g. a half-dead peer or a slow reader
  not closed within its deadline).
"""

import argparse
import csv
import json
import statistics
import sys

RSS_GROWTH_LIMIT = 0.10


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--loadgen-json", required=True)
    ap.add_argument("--loadgen-rc", type=int, required=True)
    ap.add_argument("--fd-base", type=int, required=True)
    ap.add_argument("--fd-end", type=int, required=True)
    ap.add_argument("--fd-back-ms", type=int, required=True)
    ap.add_argument("--cooldown-s", type=float, required=True)
    ap.add_argument("--rss-base-kb", type=int, required=True)
    ap.add_argument("--rss-after-kb", type=int, required=True)
    ap.add_argument("--rss-warmup-s", type=float, required=True)
    ap.add_argument("--summary", required=True)
    a = ap.parse_args()

    with open(a.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        with open(a.loadgen_json) as f:
            lg = json.load(f)
    except (OSError, ValueError) as e:
        print(f"soak: FAIL: no loadgen report ({e}); loadgen exit code {a.loadgen_rc}")
        return 1

    failures = []
    tl = lg.get("timeline") or {}
    lt = lg.get("latency_timeline") or {}
    origin = lt.get("origin_unix_ms")
    ws_ms, we_ms = tl.get("window_start_ms"), tl.get("window_end_ms")
    if origin is None or ws_ms is None or we_ms is None:
        print("soak: FAIL: loadgen did not measure (no window in its report)")
        return 1
    churn_start = int(origin + ws_ms)
    churn_end = int(origin + we_ms)

    # Latency per second, by Unix second, merged into the CSV.
    lat = {}
    for i, n in enumerate(lt.get("count", [])):
        sec = (origin + i * 1000) // 1000
        lat[sec] = (n, lt["p50_us"][i], lt["p99_us"][i], lt["max_us"][i])
    for r in rows:
        t = int(r["unix_ms"])
        r["phase"] = (
            "warmup" if t < churn_start else "churn" if t < churn_end else "after"
        )
        n, p50, p99, mx = lat.get(t // 1000, ("", "", "", ""))
        r["deliveries"], r["p50_us"], r["p99_us"], r["max_us"] = n, p50, p99, mx
    fields = [
        "unix_ms",
        "phase",
        "rss_kb",
        "fds",
        "buffered_bytes",
        "connections_open",
        "idle_timeouts_total",
        "slow_consumer_closed_total",
        "deliveries",
        "p50_us",
        "p99_us",
        "max_us",
    ]
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})

    def col(name, rs):
        return [int(r[name]) for r in rs if r.get(name) not in ("", None)]

    churn = [r for r in rows if r["phase"] == "churn"]
    ref_at = churn_start + a.rss_warmup_s * 1000
    ref_rows = [r for r in churn if abs(int(r["unix_ms"]) - ref_at) <= 2000]
    rss_ref = median(col("rss_kb", ref_rows))
    rss_end = median(col("rss_kb", churn[-5:]))
    rss_all = col("rss_kb", rows)
    fds_all = col("fds", rows)
    buffered = col("buffered_bytes", rows)
    buffered_churn = col("buffered_bytes", churn)

    if rss_ref is None or rss_end is None:
        failures.append("RSS: too few samples in the churn window to judge")
    elif rss_end > rss_ref * (1 + RSS_GROWTH_LIMIT):
        failures.append(
            f"RSS grew {100 * (rss_end / rss_ref - 1):.1f} % during the churn "
            f"({rss_ref / 1024:.1f} MiB after warm-up → {rss_end / 1024:.1f} MiB at the end; "
            f"limit {100 * RSS_GROWTH_LIMIT:.0f} %)"
        )
    if a.fd_back_ms < 0:
        failures.append(
            f"fds: {a.fd_end} open {a.cooldown_s:.0f} s after the churn stopped, baseline "
            f"{a.fd_base} (a descriptor leak)"
        )

    d = lg.get("delivery") or {}
    lost, dup = d.get("lost"), d.get("duplicates")
    if lost is None or lost > 0 or (dup or 0) > 0:
        failures.append(
            f"stable subscribers: {lost} lost, {dup} duplicates of {d.get('expected')} expected"
        )
    if a.loadgen_rc != 0:
        for why in lg.get("why", []) or [f"loadgen exit code {a.loadgen_rc}"]:
            failures.append(f"loadgen: {why}")

    # Latency over time: the window in (at most) ten slices.
    counts = lt.get("count", [])
    first = max(0, (churn_start - origin) // 1000)
    last = min(len(counts), (churn_end - origin + 999) // 1000)
    slices = []
    if last > first:
        step = max(1, (last - first + 9) // 10)
        for s in range(first, last, step):
            idx = [i for i in range(s, min(s + step, last)) if counts[i] > 0]
            if not idx:
                continue
            slices.append(
                {
                    "from_s": s - first,
                    "to_s": min(s + step, last) - first,
                    "deliveries": sum(counts[i] for i in idx),
                    "p50_us_median": median([lt["p50_us"][i] for i in idx]),
                    "p99_us_max": max(lt["p99_us"][i] for i in idx),
                    "max_us": max(lt["max_us"][i] for i in idx),
                }
            )

    churn_sec = lg.get("churn") or {}
    kinds = {
        k["kind"]: {
            "started": k["started"],
            "closed_in_time": k["closed_in_time"],
            "closed_late": k["closed_late"],
            "not_closed": k["not_closed"],
            "deadline_ms": k["deadline_ms"],
            # Null when the close is only known to have happened by the deadline.
            "close_after_max_us": k["close_after_us"]["max"]
            if k["close_after_us"]["count"] > 0
            else None,
            "outcomes": k["outcomes"],
            "counters": k["counters"],
        }
        for k in churn_sec.get("kinds", [])
    }
    summary = {
        "passed": not failures,
        "failures": failures,
        "churn_s": (churn_end - churn_start) / 1000,
        "rss_kb": {
            "idle_baseline": a.rss_base_kb,
            "after_warmup": rss_ref,
            "end_of_churn": rss_end,
            "max": max(rss_all) if rss_all else None,
            "after_cooldown": a.rss_after_kb,
        },
        "fds": {
            "baseline": a.fd_base,
            "max": max(fds_all) if fds_all else None,
            "end": a.fd_end,
            "back_to_baseline_ms": a.fd_back_ms if a.fd_back_ms >= 0 else None,
        },
        "buffered_bytes": {
            "max": max(buffered) if buffered else None,
            "median_in_churn": median(buffered_churn),
            "end": buffered[-1] if buffered else None,
        },
        "latency_us": lg.get("latency_us"),
        "latency_by_slice": slices,
        "delivery": {k: d.get(k) for k in ("expected", "delivered", "lost", "duplicates")},
        "churn": kinds,
    }
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=2)

    mib = lambda kb: "-" if kb is None else f"{kb / 1024:.1f} MiB"
    r = summary["rss_kb"]
    print(
        f"soak: RSS idle {mib(r['idle_baseline'])}, after warm-up {mib(r['after_warmup'])}, "
        f"end of churn {mib(r['end_of_churn'])}, max {mib(r['max'])}, after cooldown "
        f"{mib(r['after_cooldown'])}"
    )
    fd = summary["fds"]
    print(
        f"soak: fds baseline {fd['baseline']}, max {fd['max']}, end {fd['end']}"
        + (
            f" (back to baseline {fd['back_to_baseline_ms']} ms after loadgen ended)"
            if fd["back_to_baseline_ms"] is not None
            else ""
        )
    )
    b = summary["buffered_bytes"]
    print(
        f"soak: ringcast_buffered_bytes max {b['max']}, median in churn {b['median_in_churn']}, "
        f"end {b['end']}"
    )
    l = lg.get("latency_us") or {}
    print(
        f"soak: latency p50 {l.get('p50')} µs, p99 {l.get('p99')} µs, p99.9 {l.get('p999')} µs, "
        f"max {l.get('max')} µs over {l.get('count')} deliveries; by slice of the churn:"
    )
    for s in slices:
        print(
            f"        {s['from_s']:>5}-{s['to_s']:<5}s  {s['deliveries']:>9} deliveries  "
            f"p50 {s['p50_us_median']:>7} µs  p99 ≤ {s['p99_us_max']:>7} µs  max {s['max_us']:>8} µs"
        )
    print(f"soak: delivery {summary['delivery']}")
    for name, k in kinds.items():
        extra = ""
        if k["deadline_ms"] is not None:
            latest = (
                "closed by then"
                if k["close_after_max_us"] is None
                else f"latest {k['close_after_max_us'] / 1000:.0f} ms"
            )
            extra = (
                f", closed in time {k['closed_in_time']}/{k['started']} (deadline "
                f"{k['deadline_ms']:.0f} ms, {latest}), "
                f"late {k['closed_late']}, not closed {k['not_closed']}"
            )
        counters = "".join(
            f", {c} sum {v['sum']} max {v['max']}" for c, v in k["counters"].items()
        )
        print(f"soak: churn {name}: {k['started']} started{extra}; {k['outcomes']}{counters}")
    if failures:
        for f in failures:
            print(f"soak: FAIL: {f}")
        return 1
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
