"""Markdown tables and PNG plots from one bench.py results JSON.

Usable alone to redraw a committed result:
  /usr/bin/python3 bench/report.py bench/results/<stamp>.json
"""

import json
import os
import sys

MiB = 1 << 20
PEERS = ["full-copy", "rsync", "restic", "borg"]
CBTD = ["cbtd-external", "cbtd-hash"]
ORDER = CBTD + ["cbtd-external-none"] + PEERS


def mib(n):
    return "–" if n is None else f"{n / MiB:,.1f}"


def rss_mib(row):
    v = row.get("peak_rss_kb") or {}
    return "/".join(f"{kb / 1024:.0f}" for kb in v.values()) or "–"


def rows_by(res, phase, source="file", scenario=None):
    out = {}
    for r in res["rows"]:
        if (r["phase"] == phase and r.get("source", "file") == source
                and r.get("scenario") == scenario):
            out[r["tool"]] = r
    return out


def wall(r):
    return r["wall_s"] + r.get("sync_s", 0) if r and r["ok"] else None


def ratio(peer, base):
    a, b = wall(peer), wall(base)
    if a is None or b is None or b <= 0:
        return "–"
    return f"{a / b:.1f}×"


def table_step(res, phase, source="file", scenario=None):
    rows = rows_by(res, phase, source, scenario)
    base = rows.get("cbtd-external")
    lines = ["| tool | ok | wall s | CPU s | disk read MiB | wire MiB | "
             "repo added MiB | peak RSS MiB (per process) | "
             "time / cbtd-external |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ORDER + sorted(set(rows) - set(ORDER)):
        r = rows.get(name)
        if not r:
            continue
        ok = "yes" if r["ok"] else "**failed**"
        lines.append(
            f"| {name} | {ok} | {r['wall_s'] + r.get('sync_s', 0):.2f} | "
            f"{r['cpu_s']:.2f} | {mib(r['read_bytes'])} | "
            f"{mib(r.get('wire_bytes'))} | {mib(r.get('repo_added_bytes'))} | "
            f"{rss_mib(r)} | {ratio(r, base)} |")
    return "\n".join(lines)


def ratio_table(res):
    lines = ["| changed | " + " | ".join(
        f"{p} / cbtd-ext" for p in PEERS + ["cbtd-hash"]) + " | " +
        " | ".join(f"{p} / cbtd-hash" for p in PEERS) + " |",
        "|---|" + "---:|" * (2 * len(PEERS) + 1)]
    for frac in res["fractions"]:
        rows = rows_by(res, f"incr-{frac}")
        e, h = rows.get("cbtd-external"), rows.get("cbtd-hash")
        cells = [ratio(rows.get(p), e) for p in PEERS + ["cbtd-hash"]]
        cells += [ratio(rows.get(p), h) for p in PEERS]
        lines.append(f"| {frac:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_table(res):
    fio = res.get("fio", {})
    size = res["main_size_bytes"]
    lines = ["| step | tool | wall s | MiB/s | limit (fio) MiB/s | "
             "% of limit | peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for phase, limit_key in (("full", "read_bytes_per_s"),
                             ("send-to-null", "read_bytes_per_s"),
                             ("send-to-file", "read_bytes_per_s"),
                             ("ingest", "write_bytes_per_s"),
                             ("ingest-mem", "write_bytes_per_s"),
                             ("restore", "write_bytes_per_s"),
                             ("restore-null", "read_bytes_per_s")):
        limit = fio.get(limit_key)
        for name, r in sorted(rows_by(res, phase).items(),
                              key=lambda kv: ORDER.index(kv[0])
                              if kv[0] in ORDER else 99):
            w = wall(r)
            if w is None:
                lines.append(f"| {phase} | {name} | failed | | | | |")
                continue
            bps = size / w
            pct = f"{100 * bps / limit:.0f}%" if limit else "–"
            if r.get("verified_identical"):
                name += " (cmp: identical)"
            lines.append(f"| {phase} | {name} | {w:.2f} | {bps / MiB:.0f} | "
                         f"{(limit or 0) / MiB:.0f} | {pct} | {rss_mib(r)} |")
    return "\n".join(lines)


def scaling_table(res):
    sizes = res.get("scale_sizes", [])
    tools = ["rsync", "cbtd-external", "cbtd-hash"]
    lines = ["| volume | " + " | ".join(f"{t} wall s" for t in tools) +
             " | rsync / cbtd-ext | cbtd-ext peak RSS MiB |",
             "|---|" + "---:|" * (len(tools) + 2)]
    for s in sizes:
        rows = {r["tool"]: r for r in res["rows"]
                if r.get("scenario") == "scaling" and r["phase"] == "scale-incr"
                and r.get("size_bytes") == s}
        cells = []
        for t in tools:
            w = wall(rows.get(t))
            cells.append("–" if w is None else f"{w:.2f}")
        e = rows.get("cbtd-external")
        lines.append(f"| {s / MiB:,.0f} MiB | " + " | ".join(cells) + " | "
                     f"{ratio(rows.get('rsync'), e)} | "
                     f"{rss_mib(e) if e else '–'} |")
    return "\n".join(lines)


def goals(res):
    """The issue's goals, checked against this run's figures."""
    out = []
    one = rows_by(res, "incr-0.01")
    e = one.get("cbtd-external")
    size = res["main_size_bytes"]
    def check(label, value, target, fmt="{:.1f}×", higher=True):
        if value is None:
            out.append(f"| {label} | {target} | not measured | – |")
            return
        met = "met" if (value >= float(target.strip("≥≤×% "))
                        if higher else
                        value <= float(target.strip("≥≤×% "))) else "**not met**"
        out.append(f"| {label} | {target} | {fmt.format(value)} | {met} |")
    def r(peer):
        a, b = wall(one.get(peer)), wall(e)
        return a / b if a and b else None
    check(f"1% on {size / MiB:,.0f} MiB: rsync / cbtd-external", r("rsync"),
          "≥20×")
    check("1%: restic / cbtd-external", r("restic"), "≥10×")
    check("1%: borg / cbtd-external", r("borg"), "≥10×")
    if e and e["ok"] and e.get("changed_chunk_bytes"):
        send = e["procs"].get("sender", {}).get("read_bytes")
        check("1%: cbtd bytes read / changed chunks",
              send / e["changed_chunk_bytes"] if send is not None else None,
              "≤1.2×", "{:.2f}×", higher=False)
    else:
        check("1%: cbtd bytes read / changed chunks", None, "≤1.2×")
    fio = res.get("fio", {})
    raw = "cbtd-external-none"
    def pct_of(phase, key, tool=raw):
        w = wall(rows_by(res, phase).get(tool))
        return (100 * size / w / fio[key]) if w and fio.get(key) else None
    def vs_dd(phase, tool=raw):
        a = wall(rows_by(res, phase).get("full-copy"))
        b = wall(rows_by(res, phase).get(tool))
        return a / b if a and b else None
    check("ingest of a full stream file in memory (tmpfs), compression "
          "off, % of fio write", pct_of("ingest-mem", "write_bytes_per_s"),
          "≥80%", "{:.0f}%")
    v = pct_of("ingest", "write_bytes_per_s")
    out.append("| ingest, the stream file cold on the same disk (context: "
               "bounded by fio read too) | – | "
               + ("–" if v is None else f"{v:.0f}%") + " | – |")
    check("restore to /dev/null, compression off, % of fio read",
          pct_of("restore-null", "read_bytes_per_s"), "≥80%", "{:.0f}%")
    check("restore to a file, compression off: dd time / cbtd time",
          vs_dd("restore"), "≥1.0×", "{:.2f}×")
    check("full end to end, compression off: dd time / cbtd time",
          vs_dd("full"), "≥1.0×", "{:.2f}×")
    check("sender alone, full to a null sink, zstd, % of fio read (issue "
          "17)", pct_of("send-to-null", "read_bytes_per_s", "cbtd-external"),
          "≥85%", "{:.0f}%")
    v = vs_dd("full", "cbtd-external")
    out.append("| full end to end, zstd (reported): dd time / cbtd time | – | "
               + ("–" if v is None else f"{v:.2f}×") + " | – |")
    for phase, key in (("full", "read_bytes_per_s"),
                       ("restore", "write_bytes_per_s")):
        v = pct_of(phase, key)
        out.append(f"| {phase}, compression off, % of fio "
                   f"{key.split('_')[0]} (context) | – | "
                   + ("–" if v is None else f"{v:.0f}%") + " | – |")
    if e and e["ok"]:
        send = e["procs"].get("sender", {}).get("read_bytes")
        if send is not None and e.get("changed_bytes"):
            out.append(f"| 1%: cbtd bytes read / changed bytes (chunk "
                       f"{(e.get('chunk_bytes') or 0) // 1024} KiB grid) | "
                       f"(context) | {send / e['changed_bytes']:.2f}× | – |")
    rss = []
    for s in res.get("scale_sizes", []):
        for r in res["rows"]:
            if (r.get("scenario") == "scaling" and r["tool"] == "cbtd-external"
                    and r["phase"] == "scale-incr" and r["size_bytes"] == s
                    and r["ok"]):
                rss.append(f"{s / MiB:,.0f} MiB: {rss_mib(r)}")
    out.append("| peak RSS sender/receiver MiB, incremental, by volume size | "
               "bounded, flat | " + ("; ".join(rss) or "not measured") +
               " | see values |")
    lines = ["| goal | target | measured | |", "|---|---|---:|---|"] + out
    return "\n".join(lines)


def markdown(res, title):
    img = res.get("image", {})
    mix = img.get("mix_bytes", {})
    tot = sum(mix.values()) or 1
    mixs = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in mix.items())
    fio = res.get("fio", {})
    parts = [
        f"# cbtd benchmark {title}",
        "",
        f"Mode **{res['mode']}**, {res['duration_s']} s. Host: kernel "
        f"{res['host']['kernel']}, {res['host']['cpus']} CPUs, filesystem "
        f"{res['host']['fs']}. Before every measured step the source and the "
        f"destination are evicted from the page cache (posix_fadvise "
        f"DONTNEED{'; whole cache dropped' if res['drop_caches'] else ''}), "
        f"so their reads hit the disk.",
        "",
        f"Source: a dense raw image of {res['main_size_bytes'] / MiB:,.0f} MiB"
        f" (seed {res['seed']}), 1 MiB regions: {mixs}. Workloads: seeded "
        f"random 64 KiB writes at 4 KiB-aligned offsets, non-overlapping, "
        f"covering {', '.join(f'{f:.1%}' for f in res['fractions'])} "
        f"(applied one after another; each tool backs up every state).",
        "",
        f"Machine limits (fio, 1 MiB direct sequential, same filesystem): "
        f"read {fio.get('read_bytes_per_s', 0) / MiB:,.0f} MiB/s, write "
        f"{fio.get('write_bytes_per_s', 0) / MiB:,.0f} MiB/s (queue depth "
        f"16); read at queue depth 1: "
        f"{fio.get('read_qd1_bytes_per_s', 0) / MiB:,.0f} MiB/s.",
        "",
        "cbtd transport: **" + res.get("cbtd_transport", "?") +
        "**, encryption: **" + res.get("cbtd_encryption", "?") + "**. "
        "Wall = the longest `/usr/bin/time` elapsed of the step's "
        "processes (the sender's with a served receiver) plus a syncfs of "
        "the destination afterwards, for every tool.",
        "",
    ]
    if res.get("notes"):
        parts += ["Notes from the run:", ""]
        parts += [f"- {n}" for n in res["notes"]] + [""]
    parts += ["## Goals", "", goals(res), "",
              "## Incremental: peer time / cbtd time", "", ratio_table(res),
              ""]
    for frac in res["fractions"]:
        parts += [f"### {frac:.1%} changed", "",
                  table_step(res, f"incr-{frac}"), ""]
    parts += ["## Full backup and full restore vs the machine's limits", "",
              throughput_table(res), "",
              "Full backups in detail:", "", table_step(res, "full"), ""]
    if any(r.get("source") == "loop" for r in res["rows"]):
        parts += ["## Same image on a loop device, 1% changed", "",
                  table_step(res, "loop-incr-0.01", source="loop"), ""]
    elif res.get("loop", {}).get("unavailable"):
        parts += ["## Loop device", "",
                  "Not measured: " + res["loop"]["unavailable"], ""]
    if res.get("scale_sizes"):
        parts += [f"## Scaling: {res.get('scaling_changed_bytes', 0) / MiB:.1f}"
                  " MiB changed on growing volumes", "", scaling_table(res), ""]
    pf = res.get("profile_full")
    if pf:
        parts += ["## Where the time goes: full backup split in halves", "",
                  f"`cbtctl send --full` alone into a file: "
                  f"{pf.get('sender_alone_wall_s')} s; `cbt-receiver receive` "
                  f"alone from that file ({pf['stream_bytes'] / MiB:,.1f} MiB "
                  f"stream), under `strace -f -w -c`: "
                  f"{pf.get('receiver_alone_wall_s')} s. Wall time per system "
                  "call of the receiver:", "", "```"] + pf.get(
                      "receiver_strace_wall", []) + ["```", ""]
    if res.get("profiles"):
        parts += ["## Where the time goes (perf, cbtd senders at 1%)", ""]
        for k, lines in res["profiles"].items():
            parts += [f"`{k}` (perf record -g; self time by command, "
                      "object, then by object and symbol):", "", "```"] + lines + [
                      "```", ""]
    parts += ["Peak RSS per process: sender/receiver for cbtd, the tool's "
              "main process otherwise (children are reaped into it). Disk "
              "read is read_bytes from /proc/<pid>/io of all processes of a "
              "step.", ""]
    return "\n".join(parts)


def plots(res, base):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing, no plots", file=sys.stderr)
        return
    # Incremental time vs changed fraction, per tool.
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool in CBTD + PEERS:
        xs, ys = [], []
        for frac in res["fractions"]:
            w = wall(rows_by(res, f"incr-{frac}").get(tool))
            if w is not None:
                xs.append(100 * frac)
                ys.append(w)
        if xs:
            ax.plot(xs, ys, marker="o", label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("changed (% of volume)")
    ax.set_ylabel("incremental wall time (s)")
    ax.set_title(f"Incremental backup of {res['main_size_bytes'] / MiB:,.0f}"
                 " MiB image")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(base + "-incremental.png", dpi=110)
    plt.close(fig)
    # Time vs volume size, same changed bytes (not with --sizes none).
    if not res.get("scale_sizes"):
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool in ["cbtd-external", "cbtd-hash", "rsync"]:
        xs, ys = [], []
        for s in res.get("scale_sizes", []):
            for r in res["rows"]:
                if (r.get("scenario") == "scaling" and r["tool"] == tool and
                        r["phase"] == "scale-incr" and r["size_bytes"] == s
                        and r["ok"]):
                    xs.append(s / MiB)
                    ys.append(wall(r))
        if xs:
            ax.plot(xs, ys, marker="o", label=tool)
    ax.set_xlabel("volume size (MiB)")
    ax.set_ylabel("incremental wall time (s)")
    ax.set_title(f"Same {res.get('scaling_changed_bytes', 0) / MiB:.1f} MiB "
                 "changed on growing volumes")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(base + "-scaling.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as f:
        res = json.load(f)
    base = os.path.splitext(path)[0]
    title = os.path.basename(base)
    with open(base + ".md", "w") as f:
        f.write(markdown(res, title))
    plots(res, base)
