"""The VM-rig bench (bench/vm/cbt_costs.sh): its log -> JSON + Markdown.

  /usr/bin/python3 bench/vm_report.py LOG OUT_BASE [DURATION_S]
writes OUT_BASE.json and OUT_BASE.md. The figures are the guest's own
(fio's JSON, /usr/bin/time), never typed in.
"""

import json
import statistics
import sys


def parse(log_path):
    for line in open(log_path, errors="replace"):
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise SystemExit(f"{log_path}: no BENCH_JSON line (the VM run failed?)")


def mean(vals):
    return statistics.mean(vals) if vals else None


def changed_set_table(rows):
    times = {r["case"]: r for r in rows if r["part"] == "changed_set"}
    sizes = [r for r in rows if r["part"] == "changed_set_bytes"]
    out = ["| volume | changed (written) | thin-delta s | hash s | "
           "hash / thin-delta | thin-delta reports | hash reports |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for s in sizes:
        mib = s["size_mib"]
        td = times[f"thin-delta-{mib}M"]["wall_s"]
        h = times[f"hash-{mib}M"]["wall_s"]
        out.append(f"| {mib} MiB | {s['written'] / 2**20:.2f} MiB | {td:.2f} | "
                   f"{h:.2f} | {h / td:.1f}× | "
                   f"{s['thin_delta'] / 2**20:.2f} MiB | "
                   f"{s['hash'] / 2**20:.2f} MiB |")
    return out


def write_cost_table(rows):
    w = [r for r in rows if r["part"] == "write_cost"]
    cases = list(dict.fromkeys(r["case"] for r in w))
    out = ["| layout | 4 KiB random write IOPS | vs plain | "
           "1 MiB sequential MiB/s | vs plain |",
           "|---|---:|---:|---:|---:|"]
    agg = {}
    for c in cases:
        rand = mean([r["iops"] for r in w if r["case"] == c
                     and r["rw"] == "randwrite"])
        seq = mean([r["mib_s"] for r in w if r["case"] == c
                    and r["rw"] == "write"])
        agg[c] = (rand, seq)
    base = {"cow-snapshot": "plain", "era-stack": "plain",
            "thin-snapshot": "thin"}
    for c in cases:
        rand, seq = agg[c]
        b = agg.get(base.get(c, c))
        rr = f"{rand / b[0]:.2f}×" if b and b[0] else "–"
        sr = f"{seq / b[1]:.2f}×" if b and b[1] else "–"
        out.append(f"| {c} | {rand:,.0f} | {rr} | {seq:,.1f} | {sr} |")
    return out, agg


def thin_full_table(rows):
    t = [r for r in rows if r["part"] == "thin_full"]
    out = ["| thin LV | written | pool maps | cbtd's full read | read / mapped "
           "| wall (TCG) |", "|---:|---:|---:|---:|---:|---:|"]
    for r in t:
        out.append(f"| {r['size_bytes'] / 2**30:.0f} GiB | "
                   f"{r['written_bytes'] / 2**20:,.0f} MiB | "
                   f"{r['mapped_bytes'] / 2**20:,.1f} MiB | "
                   f"{r['bytes_read'] / 2**20:,.1f} MiB | "
                   f"{r['bytes_read'] / r['mapped_bytes']:.3f} | "
                   f"{r['wall_s']:.0f} s |")
    return out if t else []


def main():
    log_path, base = sys.argv[1], sys.argv[2]
    rows = parse(log_path)
    res = {"rows": rows}
    if len(sys.argv) > 3:
        res["duration_s"] = float(sys.argv[3])
    md = [f"# cbtd VM-rig bench {base.rsplit('/', 1)[-1]}", "",
          "qemu TCG guest (Debian's kernel, 2 vCPUs, virtio disk backed by a "
          "sparse file on the host): absolute numbers are slow; compare the "
          "ratios. `bench/run.sh --vm` reproduces it.", "",
          "## Time to compute the changed set, thin volume, 1% changed", "",
          "64 KiB random writes covering 1% of a fully mapped thin volume "
          "(64 KiB pool chunks). thin-delta: `cbtctl changes --method "
          "thin-delta` (reserve metadata snapshot, thin_delta, release). "
          "hash: `cbtctl changes --method hash` over the new snapshot "
          "against the previous snapshot's 64 KiB digests. Page cache "
          "dropped before each.", ""]
    if any(r["part"] == "changed_set" for r in rows):
        md += changed_set_table(rows)
    else:
        md += ["(not run: BENCH_VM_PARTS)"]
    table, agg = write_cost_table(rows)
    if not agg:
        table = ["(not run: BENCH_VM_PARTS)"]
    md += ["", "## Write cost of what tracking keeps between runs", "",
           "fio, direct I/O, psync, over the first 128 MiB of a 256 MiB "
           "volume, to blocks not yet written since the snapshot or the "
           "stack's creation; mean of the repetitions. cow-snapshot: a "
           "thick LV with a COW snapshot (4 KiB chunks), what cow-table "
           "keeps. era-stack: the LV under `cbtctl era-stack` (64 KiB era "
           "blocks). thin-snapshot: a thin LV with a thin snapshot, what "
           "thin-delta keeps (vs the same thin LV without one).", ""]
    md += table
    thin = thin_full_table(rows)
    if thin:
        md += ["", "## A thin full reads what the pool maps", "",
               "cbtd's first backup (`method = thin-delta`, encryption on) "
               "of a sparse thin LV written in 64 MiB pieces spread over "
               "it, to a cbt-receiver in the guest; `bytes_read` of the "
               "run against the pool's mapped bytes (`lvs data_percent` of "
               "the kept snapshot).", ""] + thin
    if "duration_s" in res:
        md += ["", f"Duration: {res['duration_s']:.0f} s."]
    res["write_cost_mean"] = {c: {"randwrite_iops": v[0], "write_mib_s": v[1]}
                              for c, v in agg.items()}
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
