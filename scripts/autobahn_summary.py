#!/usr/bin/env python3
"""Summarise Autobahn TestSuite reports (kosoku's index.json format).

Usage:
    autobahn_summary.py [--groups 1,2,3] [--merged-out PATH] [--details N] REPORT...

Each REPORT is an index.json written by `kosoku -m fuzzingclient -o DIR`, or a
directory holding one (DIR/index.json) or per-group runs (DIR/groups/*/index.json,
as scripts/autobahn.sh writes them). index.json maps agent -> case id ->
{behavior, behaviorClose, remoteCloseCode, duration, reportfile}; reportfile is the
per-case JSON beside it, read here for the details of failed cases.

A case FAILED when its behavior or its behaviorClose is not one of OK, NON-STRICT,
INFORMATIONAL, UNIMPLEMENTED -- that is FAILED, ERROR (the case could not run),
WRONG CODE, UNCLEAN or FAILED BY CLIENT -- the same verdict kosoku itself gives.
Otherwise the case's outcome is its behavior.

Exit status: 0 when at least one case ran and none FAILED (and every group named
with --groups has at least one case); 1 otherwise; 2 on a usage or read error.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import sys
from collections import Counter, defaultdict

OUTCOMES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}


def case_key(case_id: str) -> list[int]:
    try:
        return [int(p) for p in case_id.split(".")]
    except ValueError:
        return [1 << 30]


def find_indexes(paths: list[str]) -> list[str]:
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            direct = os.path.join(p, "index.json")
            per_group = sorted(glob.glob(os.path.join(p, "groups", "*", "index.json")))
            if per_group:
                found.extend(per_group)
            elif os.path.isfile(direct):
                found.append(direct)
        elif os.path.isfile(p):
            found.append(p)
        else:
            print(f"autobahn_summary: no such report: {p}", file=sys.stderr)
    return found


def load_cases(indexes: list[str]) -> dict[str, dict]:
    """case id -> index entry plus 'agent' and '_dir' (where its reportfile lives)."""
    cases: dict[str, dict] = {}
    for path in indexes:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        for agent, entries in index.items():
            for case_id, entry in entries.items():
                e = dict(entry)
                e["agent"] = agent
                e["_dir"] = os.path.dirname(os.path.abspath(path))
                if case_id in cases:
                    print(
                        f"autobahn_summary: case {case_id} appears twice; using {path}",
                        file=sys.stderr,
                    )
                cases[case_id] = e
    return cases


def outcome(entry: dict) -> str:
    b, bc = entry.get("behavior"), entry.get("behaviorClose")
    if b not in ACCEPTABLE or bc not in ACCEPTABLE:
        return "FAILED"
    return b


def short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def read_case(entry: dict) -> dict:
    try:
        with open(
            os.path.join(entry["_dir"], entry.get("reportfile") or ""), encoding="utf-8"
        ) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def case_detail(case_id: str, entry: dict) -> list[str]:
    lines = [
        f"--- {case_id}: behavior={entry.get('behavior')} "
        f"behaviorClose={entry.get('behaviorClose')} "
        f"remoteCloseCode={entry.get('remoteCloseCode')} duration={entry.get('duration')}ms"
    ]
    report = os.path.join(entry["_dir"], entry.get("reportfile") or "")
    try:
        with open(report, encoding="utf-8") as f:
            c = json.load(f)
    except (OSError, ValueError) as err:
        lines.append(f"    (per-case report unreadable: {err})")
        return lines
    lines += [
        f"    description:  {short(c.get('description', ''))}",
        f"    expectation:  {short(c.get('expectation', ''))}",
        f"    result:       {short(c.get('result', ''))}",
        f"    resultClose:  {short(c.get('resultClose', ''))}",
        f"    close:        remote={c.get('remoteCloseCode')} {c.get('remoteCloseReason')!r}"
        f" local={c.get('localCloseCode')} {c.get('localCloseReason')!r}"
        f" wasClean={c.get('wasClean')} notCleanReason={c.get('wasNotCleanReason')!r}",
        f"    flags:        closedByMe={c.get('closedByMe')} failedByMe={c.get('failedByMe')}"
        f" droppedByMe={c.get('droppedByMe')}"
        f" dropTimeout={c.get('wasServerConnectionDropTimeout')}"
        f" openHsTimeout={c.get('wasOpenHandshakeTimeout')}"
        f" closeHsTimeout={c.get('wasCloseHandshakeTimeout')}",
        f"    expectedClose: {short(c.get('expectedClose'))}",
        f"    expected:     {short(c.get('expected'))}",
        f"    received:     {short(c.get('received'))}",
        f"    report:       {report}",
    ]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="index.json files or report directories")
    ap.add_argument(
        "--groups",
        default="",
        help="comma-separated case groups that must each have run at least one case "
        "(e.g. 1,2,3,4,5,6,7,9,10 or 9.1)",
    )
    ap.add_argument("--merged-out", help="also write the merged index.json here")
    ap.add_argument(
        "--details", type=int, default=50, help="print full details for at most N failed cases"
    )
    args = ap.parse_args()

    indexes = find_indexes(args.reports)
    try:
        cases = load_cases(indexes)
    except (OSError, ValueError) as err:
        print(f"autobahn_summary: cannot read report: {err}", file=sys.stderr)
        return 2

    if args.merged_out:
        merged: dict[str, dict] = defaultdict(dict)
        for cid in sorted(cases, key=case_key):
            e = cases[cid]
            rel = os.path.relpath(
                os.path.join(e["_dir"], e.get("reportfile") or ""),
                os.path.dirname(os.path.abspath(args.merged_out)),
            )
            merged[e["agent"]][cid] = {
                k: v for k, v in e.items() if k not in ("agent", "_dir")
            } | {"reportfile": rel}
        os.makedirs(os.path.dirname(os.path.abspath(args.merged_out)), exist_ok=True)
        with open(args.merged_out, "w", encoding="utf-8") as f:
            json.dump(merged, f, indent=3, sort_keys=True)

    ids = sorted(cases, key=case_key)
    agents = sorted({cases[c]["agent"] for c in ids})
    totals = Counter(outcome(cases[c]) for c in ids)
    per_group: dict[str, Counter] = defaultdict(Counter)
    for c in ids:
        per_group[c.split(".")[0]][outcome(cases[c])] += 1

    print("== Autobahn TestSuite summary ==")
    print(f"reports: {len(indexes)} index.json file(s); agent(s): {', '.join(agents) or '-'}")
    print(f"cases: {len(ids)}")
    for o in OUTCOMES:
        print(f"  {o:<14} {totals.get(o, 0)}")
    raw_b = Counter(cases[c].get("behavior") for c in ids)
    raw_bc = Counter(cases[c].get("behaviorClose") for c in ids)
    print(f"behavior:      {dict(sorted(raw_b.items(), key=lambda kv: str(kv[0])))}")
    print(f"behaviorClose: {dict(sorted(raw_bc.items(), key=lambda kv: str(kv[0])))}")

    print()
    print(f"{'group':<6}{'cases':>7}" + "".join(f"{o:>15}" for o in OUTCOMES))
    for g in sorted(per_group, key=lambda s: case_key(s)):
        cnt = per_group[g]
        print(f"{g:<6}{sum(cnt.values()):>7}" + "".join(f"{cnt.get(o, 0):>15}" for o in OUTCOMES))

    slow = sorted(ids, key=lambda c: -(cases[c].get("duration") or 0))[:5]
    if slow:
        print()
        print("slowest cases: " + ", ".join(f"{c} {cases[c].get('duration')}ms" for c in slow))
        print(f"sum of case durations: {sum(cases[c].get('duration') or 0 for c in ids) / 1000:.1f}s")

    problems: list[str] = []
    for g in [g.strip() for g in args.groups.split(",") if g.strip()]:
        if "*" in g:
            hit = any(fnmatch.fnmatchcase(c, g) for c in ids)
        else:
            hit = any(c == g or c.startswith(g + ".") for c in ids)
        if not hit:
            problems.append(f"group {g}: no case ran")

    for label in ("NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"):
        sel = [c for c in ids if outcome(cases[c]) == label]
        if sel:
            print()
            print(f"{label} cases ({len(sel)}):")
            for c in sel:
                e = cases[c]
                c_json = read_case(e)
                print(
                    f"  {c:<8} behavior={e.get('behavior')} behaviorClose={e.get('behaviorClose')}"
                    f" remoteClose={e.get('remoteCloseCode')} {c_json.get('remoteCloseReason')!r}"
                    f" received={len(c_json.get('received') or [])} event(s)"
                    f" expected={'/'.join(sorted(c_json.get('expected') or {})) or '-'}"
                )

    failed = [c for c in ids if outcome(cases[c]) == "FAILED"]
    if failed:
        print()
        print(f"FAILED cases ({len(failed)}):")
        for c in failed:
            e = cases[c]
            print(
                f"  {c:<8} behavior={e.get('behavior')} behaviorClose={e.get('behaviorClose')}"
                f" remoteCloseCode={e.get('remoteCloseCode')}"
            )
        print()
        print(f"details (first {min(len(failed), args.details)} of {len(failed)}):")
        for c in failed[: args.details]:
            for line in case_detail(c, cases[c]):
                print(line)

    if not ids:
        problems.append("no case ran")
    for p in problems:
        print(f"ERROR: {p}")

    print()
    print(
        "Autobahn summary: "
        + f"{len(ids)} cases: "
        + ", ".join(f"{totals.get(o, 0)} {o}" for o in OUTCOMES)
    )
    print(f"autobahn: {len(ids) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
