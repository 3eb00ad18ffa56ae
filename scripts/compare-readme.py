#!/usr/bin/env python3
"""docs/results/README.md from the three report.json files of scripts/compare.sh.

Every number is read from them, and every sentence that interprets a number
is chosen by the numbers, so a claim that stops being true on another run
changes with it. Usage: scripts/compare-readme.py OUT_DIR (with OUT_DIR/report.json
OUT_DIR/lag/report.json and OUT_DIR/tabs/report.json).
"""
import json
import sys

out = sys.argv[1]
kill = json.load(open(f"{out}/report.json"))
lag = json.load(open(f"{out}/lag/report.json"))
tabs = json.load(open(f"{out}/tabs/report.json"))

GUARANTEES = [
    ("read_your_writes", "read-your-writes", "read-your-writes"),
    ("monotonic_reads", "monotonic reads", "monotonic-reads"),
    ("monotonic_writes", "monotonic writes", "monotonic-writes"),
    ("writes_follow_reads", "writes follow reads", "writes-follow-reads"),
    ("lost_update", "lost update", "lost-update"),
    ("resurrection", "resurrection", "resurrection"),
]


def guarantees_table(c, prefix):
    """A row per mode, a column per guarantee; a broken one links its first picture."""
    rows = ["| mode | " + " | ".join(g[1] for g in GUARANTEES) + " |",
            "|---|" + "---:|" * len(GUARANTEES)]
    for name, r in ran(c).items():
        g = r["guarantees"]
        cells = []
        for key, _, slug in GUARANTEES:
            count = g["violations"].get(key, 0)
            first = next((i for i, e in enumerate(g["examples"]) if e["kind"] == key), None)
            if count and first is not None:
                cells.append(
                    f"{count} ([e.g.]({prefix}history-{name}-counterexamples/{first + 1}-{slug}.svg))"
                )
            else:
                cells.append(str(count))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def ran(c):
    return {o["label"]: o for o in c["outcomes"] if o["outcome"] == "ran"}


def not_ran(c):
    return [o for o in c["outcomes"] if o["outcome"] != "ran"]


def n(x, one, many=None):
    return f"{x} {one if x == 1 else (many or one + 's')}"


def split_at_kill(r):
    """(sessions lost before the second of the first fault, from it on)."""
    if not r["marks"]:
        return r["sessions_lost"], 0
    t = r["marks"][0]["at_s"]
    before = sum(p["sessions_lost"] for p in r["timeline"] if p["t_s"] + 1 <= t)
    return before, r["sessions_lost"] - before


def in_first(r, key, seconds):
    """How many of r's `key` (sessions_lost, stale_reads) came in the first `seconds`."""
    return sum(p[key] for p in r["timeline"] if p["t_s"] + 1 <= seconds)


def after_kill(r, key):
    if not r["marks"]:
        return 0
    t = r["marks"][0]["at_s"]
    return sum(p[key] for p in r["timeline"] if p["t_s"] + 1 > t)


def node_mib(r):
    m = [v for k2, v in r["server"]["memory_bytes"].items() if k2.startswith("node-")]
    return sum(m) / len(m) / 1048576 if m else 0.0


def lag99(r):
    v = r["server"]["replication_lag_p99_ms"]
    return "-" if v is None else f"{v:.1f} ms"


def code(names):
    return ", ".join(f"`{m}`" for m in names)


k, l = ran(kill), ran(lag)
st, ls = kill["settings"], lag["settings"]
L = ["# Measured results", ""]
L.append(
    f"Written by `scripts/compare.sh` from one run on this machine ({st['cpus']} CPUs "
    f"shared by the load tool, the LB and the nodes; release build). Every number "
    f"below is read from [report.json](report.json) and [lag/report.json](lag/report.json); "
    f"re-run the script to measure yours. How each figure is measured: "
    f"[docs/lab.md](../lab.md#load-and-compare)."
)
L += [
    "",
    f"## A node dies ({st['nodes']} nodes, {st['users']} users, think time "
    f"{st['think_ms']:.0f} ms, {st['duration_s']:.0f} s, {', '.join(st['faults']) or 'no fault'})",
    "",
    "[report.md](report.md) has the table and the charts.",
    "",
]
for name, r in k.items():
    before, at = split_at_kill(r)
    line = (
        f"- **{name}**: {n(r['sessions_lost'], 'session')} lost ({before} before the kill, "
        f"{at} from it on), {n(r['stale_reads'], 'stale read')}, "
        f"{n(r['lost_updates'], 'lost update')}, {n(r['error_total'], 'failed request')} "
        f"of {r['requests']}; p50/p99 {r['latency_p50_ms']:.2f}/{r['latency_p99_ms']:.2f} ms"
    )
    if r["replication_messages_per_request"] > 0:
        line += (
            f"; replication {r['replication_messages_per_request']:.2f} messages and "
            f"{r['replication_bytes_per_request']:.0f} bytes per request, lag p99 {lag99(r)}"
        )
    line += f"; {r['credential_bytes_per_request']:.0f} credential bytes per request."
    L.append(line)
for o in not_ran(kill):
    L.append(f"- **{o['mode']}** {o['outcome']}: {o['reason']}")
L += ["", "Reading:", ""]
if "local" in k:
    r = k["local"]
    before, _ = split_at_kill(r)
    L.append(
        f"- `local` needs no fault to lose sessions: users were logged out {before} times "
        f"before the kill, because round-robin sends the next request to a node that never "
        f"saw the login. Each loss means a new login ({r['logins']} for {r['users']} users), "
        f"and a login is a deliberately slow password hash, so `local` also has the worst "
        f"p99 ({r['latency_p99_ms']:.0f} ms) and the fewest requests ({r['requests']})."
    )
    if all(node_mib(r) >= node_mib(o) for o in k.values()):
        L.append(
            f"- Resident memory follows the logins, not the sessions: `local` nodes held "
            f"{node_mib(r):.0f} MiB each at the end while their sessions took "
            f"{r['server']['session_bytes_held'] / 1024:.0f} KiB in all; every login hashes "
            f"the password with a memory-hard function, and the allocator keeps the pages of "
            f"the concurrent ones. The `sessions held` column is what the session stores hold."
        )
if "sticky" in k:
    r = k["sticky"]
    _, at = split_at_kill(r)
    L.append(
        f"- `sticky` is fine until the kill, then loses the killed node's users: {at} of "
        f"{r['users']} ({at / max(1, r['users']) * 100:.0f}%; a node serves about "
        f"1/{st['nodes']})."
    )
kept = [m for m, r in k.items() if m != "local" and split_at_kill(r)[1] == 0]
lost = [m for m, r in k.items() if m != "local" and split_at_kill(r)[1] > 0]
if kept:
    L.append(
        f"- No session lost at the kill: {code(kept)}"
        + (f"; some lost: {code(lost)}." if lost else ".")
    )
for name in ("replicated", "sticky-replicated", "redis", "jwt"):
    if name not in k:
        continue
    r = k[name]
    before, _ = split_at_kill(r)
    if before and k[name]["replication_messages_per_request"] > 0:
        ramp = st["ramp_up_ms"] / 1000 + 1
        when = (
            f"; all in the first {ramp:.0f} s, while the users log in, the busiest moment "
            f"of the run"
            if in_first(r, "sessions_lost", ramp) == before
            else ""
        )
        L.append(
            f"- `{name}` logged {n(before, 'user')} out before the kill: a request right "
            f"after the login reached another node before the login's copy did "
            f"(asynchronous replication{when})."
        )
    repl = r["replication_messages_per_request"] > 0
    if repl and (r["lost_updates"] or r["stale_reads"]) and after_kill(r, "stale_reads") == r["stale_reads"]:
        L.append(
            f"- `{name}` lost {n(r['lost_updates'], 'acknowledged change')} and showed "
            f"{n(r['stale_reads'], 'stale read')}: writes the killed node had acknowledged "
            f"but not yet copied (its lag p99 was {lag99(r)})."
        )
if "sticky" in k and "sticky-replicated" in k:
    a, b = k["sticky"], k["sticky-replicated"]
    L.append(
        f"- What the copies cost: `sticky-replicated` held {b['server']['sessions_held']:.0f} "
        f"sessions at the end against {a['server']['sessions_held']:.0f} for `sticky` (every "
        f"node keeps every session), and sent {b['replication_messages_per_request']:.2f} "
        f"replication messages ({b['replication_bytes_per_request']:.0f} bytes) per request."
    )
if "redis" in k and "sticky-replicated" in k:
    a, b = k["redis"], k["sticky-replicated"]
    L.append(
        f"- `redis` keeps the nodes stateless at the price of a network hop per request: "
        f"p50 {a['latency_p50_ms']:.2f} ms, p99 {a['latency_p99_ms']:.2f} ms against "
        f"{b['latency_p50_ms']:.2f} / {b['latency_p99_ms']:.2f} ms for `sticky-replicated`."
    )
if "jwt" in k and "replicated" in k:
    a, b = k["jwt"], k["replicated"]
    L.append(
        f"- `jwt` carries the login in every request: {a['credential_bytes_per_request']:.0f} "
        f"bytes of credentials per request against {b['credential_bytes_per_request']:.0f} "
        f"for a session cookie."
    )

L += [
    "",
    f"## Users faster than the copies (think time {ls['think_ms']:.0f} ms, "
    f"{ls['login_pause_ms'] or 0:.0f} ms after a login, {ls['users']} users, "
    f"{ls['duration_s']:.0f} s, {', '.join(ls['faults']) or 'no fault'})",
    "",
    "[lag/report.md](lag/report.md) has the table and the charts.",
    "",
]
for name, r in l.items():
    L.append(
        f"- **{name}**: {r['requests']} requests, p50/p99 "
        f"{r['latency_p50_ms']:.2f}/{r['latency_p99_ms']:.2f} ms, "
        f"{n(r['stale_reads'], 'stale read')}, {n(r['stale_writes'], 'stale write')}, "
        f"{n(r['lost_updates'], 'lost update')} ({r['lost_increments']} of "
        f"{r['acked_increments']} acknowledged increments), "
        f"{n(r['sessions_lost'], 'session')} lost, replication lag p99 {lag99(r)}."
    )
for o in not_ran(lag):
    L.append(f"- **{o['mode']}** {o['outcome']}: {o['reason']}")
L += ["", "Reading:", ""]
if "replicated" in l:
    r = l["replicated"]
    share = r["lost_increments"] / max(1, r["acked_increments"]) * 100
    L.append(
        f"- `replicated` (round-robin, async acks): a user's next request lands on another "
        f"node before the copy of its last write does, so it reads old data "
        f"({r['stale_reads']} stale reads) and writes on old data; last writer wins over "
        f"whole sessions, so those writes overwrite newer ones: {share:.0f}% of the "
        f"acknowledged increments were gone at the end."
    )
if "replicated" in l and "replicated+ack-all" in l:
    a, b = l["replicated"], l["replicated+ack-all"]
    verdict = "none" if b["stale_reads"] == 0 and b["lost_updates"] == 0 else "fewer"
    L.append(
        f"- `--replication-ack all` answers a write only after every peer applied it: "
        f"{verdict} ({b['stale_reads']} stale reads, {b['lost_updates']} lost updates), "
        f"paid in latency and throughput: p99 {b['latency_p99_ms']:.1f} ms against "
        f"{a['latency_p99_ms']:.1f} ms, {b['requests']} requests against {a['requests']}."
    )
if "sticky-replicated" in l:
    r = l["sticky-replicated"]
    L.append(
        f"- `sticky-replicated` keeps each user on one node, so the user never reads a "
        f"copy: {n(r['stale_reads'], 'stale read')} and {n(r['lost_updates'], 'lost update')} "
        f"with the same kind of lag (p99 {lag99(r)}), at async speed ({r['requests']} "
        f"requests). The copies are read only when a node dies (first section)."
    )
t, ts = ran(tabs), tabs["settings"]
L += [
    "",
    f"## Two tabs per user ({ts['users']} users x 2 tabs sharing a cookie, think time "
    f"{ts['think_ms']:.0f} ms, {ts['duration_s']:.0f} s, mix {ts['mix']}, no fault)",
    "",
    "[tabs/report.md](tabs/report.md) has the table and the charts.",
    "",
]
for name, r in t.items():
    L.append(
        f"- **{name}**: {r['requests']} requests, {n(r['lost_increments'], 'lost increment')} "
        f"of {r['acked_increments']} acknowledged, {n(r['stale_reads'], 'stale read')}, "
        f"{n(r['error_total'], 'failed request')}."
    )
L += [
    "",
    "## Session guarantees",
    "",
    "What the checker (`sessionlab check`, [docs/lab.md](../lab.md#histories-and-the-checker)) "
    "found in each run's history: violations per guarantee, each broken one linked to the "
    "space-time picture of its first counterexample. 0 means the guarantee held in this run.",
    "",
    "A node dies:",
    "",
]
L += guarantees_table(kill, "")
L += ["", "Users faster than the copies:", ""]
L += guarantees_table(lag, "lag/")
L += ["", "Two tabs per user:", ""]
L += guarantees_table(tabs, "tabs/")
open(f"{out}/README.md", "w").write("\n".join(L) + "\n")
