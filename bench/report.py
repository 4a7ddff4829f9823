#!/usr/bin/python3
"""Turn one bench/run results directory into summary.md and PNG plots.

Usage: /usr/bin/python3 bench/report.py RESULTS_DIR

Reads what bench/run wrote (env.txt, runs.tsv, programs.tsv and the Google
Benchmark JSON files), takes the median over repetitions, and writes:
  summary.md                 tables: ns/op and ratio to glibc per case and
                             allocator, memory, real programs, pmr, syscall
                             floor; crashes/timeouts shown where they happened
  malloc_ns_per_op.png       ns/op per allocator per workload (log scale)
  live_set_scaling.png       ns/op against live-set size
  real_programs.png          wall time of real programs, ratio to glibc
  pmr_ns_per_op.png          pmr workloads per memory resource
Plots use matplotlib when importable (Debian's /usr/bin/python3 has it) and
gnuplot otherwise; with neither, only summary.md is written.

Standard library + matplotlib only. Every ratio compares numbers from the same
run on the same machine; nothing here judges a number good or bad.
"""

import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

ALLOC_ORDER = ["glibc", "preload_floor", "jemalloc", "ga_full_guard", "ga_full_mprotect",
               "ga_fast", "ga_sample1000", "ga_sample1000_fast", "efence", "duma"]
ALLOC_LABEL = {
    "glibc": "glibc",
    "preload_floor": "LD_PRELOAD floor",
    "jemalloc": "jemalloc",
    "ga_full_guard": "guardarena full/guard",
    "ga_full_mprotect": "guardarena full/mprotect",
    "ga_fast": "guardarena fast",
    "ga_sample1000": "guardarena 1/1000",
    "ga_sample1000_fast": "guardarena 1/1000 fast",
    "efence": "Electric Fence",
    "duma": "DUMA",
}
RESOURCE_ORDER = ["new_delete", "unsync_pool", "monotonic", "jemalloc", "guarded_full_guard",
                  "guarded_full_mprotect", "guarded_fast_guard", "unsync_guarded_fast_guard"]
BASELINE = "glibc"
PMR_BASELINE = "new_delete"


# ---- reading ------------------------------------------------------------------

def clean_name(name):
    """Case name without Google Benchmark's timing decorations."""
    name = re.sub(r"/min_time:[0-9.]+", "", name)
    return name.replace("/real_time", "")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def medians(path):
    """{case: row} with the median aggregate when there are repetitions,
    else the single run. Errored runs map to {'error': message}."""
    data = load_json(path)
    if data is None:
        return {}
    singles, meds = {}, {}
    for b in data.get("benchmarks", []):
        case = clean_name(b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            singles[case] = {"error": b.get("error_message", "error")}
        elif b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                meds[case] = b
        else:
            singles.setdefault(case, b)
    singles.update(meds)
    return singles


def ns_per_op(row):
    ips = row.get("items_per_second") if row else None
    return 1e9 / ips if ips else None


def read_env(out):
    env = {}
    try:
        with open(os.path.join(out, "env.txt")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(": ")
                env.setdefault(key, []).append(value)
    except OSError:
        pass
    return env


def read_tsv(path):
    try:
        with open(path, newline="") as f:
            return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    except OSError:
        return []


def ordered(names, order):
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def case_sort_key(case):
    """Workload, then numeric arguments in order."""
    parts = case.split("/")
    nums = []
    for p in parts[1:]:
        m = re.search(r"(\d+)$", p)
        nums.append(int(m.group(1)) if m else 0)
    return (parts[0], nums)


# ---- formatting ---------------------------------------------------------------

def fmt_ns(ns):
    if ns is None:
        return "?"
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e4:
        return "%.1f µs" % (ns / 1e3)
    if ns >= 1e3:
        return "%.2f µs" % (ns / 1e3)
    if ns >= 100:
        return "%.0f ns" % ns
    return "%.1f ns" % ns


def fmt_ratio(r):
    if r is None:
        return ""
    if r >= 100:
        return "%.0f×" % r
    if r >= 10:
        return "%.1f×" % r
    return "%.2f×" % r


class Notes:
    """Numbered footnotes for failure details, deduplicated by text."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return "[%d]" % (self.items.index(text) + 1)

    def lines(self):
        return ["%d. %s" % (i + 1, t) for i, t in enumerate(self.items)]


def status_cell(status, detail, notes, who):
    """A table cell for a run that did not finish: the status, and a note
    with `who` (the allocator, so that one message shared by many cases
    makes one note) and the detail."""
    short = {"timeout": "TIMEOUT", "crash": "CRASH", "skipped": "not run", "missing": "n/a",
             "error": "ERROR"}.get(status.split(" ")[0], status.upper())
    if status.startswith("exit"):
        short = "EXIT " + status.split(" ", 1)[1]
    if status == "timeout":
        m = re.search(r"within (\d+)s", detail)
        return "TIMEOUT (>%s s)" % m.group(1) if m else short
    if not detail:
        return short
    return short + " " + notes.ref("%s: %s" % (who, detail))


def degraded(entry):
    """Why a finished run does not measure the allocator as configured
    (guard budget exhausted, blocks served unguarded), or ''."""
    if entry["status"] == "degraded":
        return entry["detail"] or "blocks served unguarded"
    row = entry.get("row") or {}
    if row.get("fallback_allocations"):
        return "%d allocations served unguarded" % row["fallback_allocations"]
    return ""


def measured(by_alloc):
    """Allocators with at least one entry that is not 'missing'."""
    return {a for a, entries in by_alloc.items()
            if any(e["status"] != "missing" for e in entries.values())}


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ---- the malloc suite ---------------------------------------------------------

def collect_malloc(out):
    """results[alloc][case] = {'status', 'detail', 'row'}"""
    results = {}
    for rec in read_tsv(os.path.join(out, "runs.tsv")):
        if len(rec) < 6 or rec[0] != "malloc":
            continue
        _, alloc, case, status, detail, path = rec[:6]
        case = clean_name(case)
        entry = {"status": status, "detail": detail, "row": None}
        if status in ("ok", "degraded") and path:
            row = medians(os.path.join(out, path)).get(case)
            if row is None:
                entry.update(status="error", detail="no result for this case in the JSON")
            elif "error" in row:
                entry.update(status="error", detail=row["error"])
            else:
                entry["row"] = row
        results.setdefault(alloc, {})[case] = entry
    return results


def malloc_section(results, notes):
    lines = []
    if not results:
        return ["No malloc_bench results.", ""]
    allocs = ordered(measured(results), ALLOC_ORDER)
    cases = sorted({c for a in results.values() for c in a}, key=case_sort_key)
    base = results.get(BASELINE, {})

    lines += ["## malloc_bench: ns per op (ratio to glibc)", "",
              "One op is one malloc+free pair (one realloc call in `realloc_growth`, one block handed "
              "from producer to consumer in `producer_consumer`); threaded cases are aggregate "
              "throughput. Median over repetitions.", ""]
    header = ["case"] + [ALLOC_LABEL.get(a, a) for a in allocs]
    rows = []
    ratios = {a: [] for a in allocs}
    for case in cases:
        bns = ns_per_op(base.get(case, {}).get("row"))
        row = [case]
        for a in allocs:
            e = results[a].get(case)
            if e is None:
                row.append("")
                continue
            if e["row"] is not None:
                ns = ns_per_op(e["row"])
                r = ns / bns if ns and bns else None
                cell = "%s (%s)" % (fmt_ns(ns), fmt_ratio(r)) if r else fmt_ns(ns)
                if degraded(e):
                    cell += " † " + notes.ref("%s: degraded, %s" % (ALLOC_LABEL.get(a, a), degraded(e)))
                elif r:
                    ratios[a].append(r)
                row.append(cell)
            else:
                row.append(status_cell(e["status"], e["detail"], notes, ALLOC_LABEL.get(a, a)))
        rows.append(row)
    gm = ["**geomean ratio** (completed cases, † excluded)"]
    for a in allocs:
        g = geomean(ratios[a])
        done = len(ratios[a])
        gm.append("%s over %d/%d" % (fmt_ratio(g), done, len(cases)) if g else "—")
    rows.append(gm)
    lines += md_table(header, rows) + [""]

    # Memory and mappings: the cost side of guard pages.
    lines += ["## malloc_bench: peak RSS (MiB) / VMAs after setup", "",
              "Peak RSS is reset at the start of each case (/proc/self/clear_refs), so it covers "
              "that case's live set and loop; VMAs = lines of /proc/self/maps after the live set "
              "is built.", ""]
    rows = []
    for case in cases:
        if not case.startswith(("malloc_free", "random_sizes")):
            continue
        row = [case]
        for a in allocs:
            e = results[a].get(case)
            r = e["row"] if e else None
            if r is None:
                row.append("—")
                continue
            rss = r.get("rss_peak_kib")
            vmas = r.get("vmas")
            row.append("%s / %s" % ("%.1f" % (rss / 1024) if rss is not None and rss >= 0 else "?",
                                    "%d" % vmas if vmas is not None else "?"))
        rows.append(row)
    lines += md_table(header, rows) + [""]

    sys_rows = []
    for case in cases:
        cells = []
        for a in allocs:
            e = results[a].get(case)
            v = e["row"].get("syscalls_per_op") if e and e["row"] else None
            cells.append("%.2f" % v if v is not None else "")
        if any(cells):
            sys_rows.append([case] + cells)
    if sys_rows:
        lines += ["## malloc_bench: syscalls per op (allocators exporting guardarena_syscall_count)", ""]
        lines += md_table(header, sys_rows) + [""]
    return lines


# ---- pmr, floor, programs -----------------------------------------------------

def collect_suite(out, suite):
    """[(name, status, detail, {case: row})] for pmr or floor runs."""
    found = []
    for rec in read_tsv(os.path.join(out, "runs.tsv")):
        if len(rec) < 6 or rec[0] != suite:
            continue
        _, name, _, status, detail, path = rec[:6]
        rows = medians(os.path.join(out, path)) if status == "ok" and path else {}
        found.append((name, status, detail, rows))
    return found


def pmr_table(out, notes):
    runs = collect_suite(out, "pmr")
    if not runs:
        return ["No pmr_bench results.", ""], {}
    data = {}  # data[workload_case][resource] = ns or ('fail', text)
    extra = {}  # extra[workload_case][resource] = (syscalls per op, fallbacks)
    failed = {}
    for name, status, detail, rows in runs:
        if status != "ok":
            failed[name] = (status, detail)
        for case, row in rows.items():
            parts = case.split("/")
            if len(parts) < 2:
                continue
            res = parts[1]
            wl = "/".join([parts[0]] + parts[2:])
            if "error" in row:
                data.setdefault(wl, {})[res] = ("fail", row["error"])
            else:
                data.setdefault(wl, {})[res] = ns_per_op(row)
                if "syscalls_per_op" in row:
                    extra.setdefault(wl, {})[res] = (row["syscalls_per_op"],
                                                     row.get("fallback_allocations", 0))
    resources = ordered({r for d in data.values() for r in d} | set(failed), RESOURCE_ORDER)
    lines = ["## pmr_bench: ns per op (ratio to new_delete_resource)", "",
             "No LD_PRELOAD: every resource in one process over glibc. jemalloc is its own "
             "mallocx/sdallocx API loaded with dlopen(RTLD_LOCAL).", ""]
    rows = []
    for wl in sorted(data, key=case_sort_key):
        base = data[wl].get(PMR_BASELINE)
        base = base if isinstance(base, float) else None
        row = [wl]
        for r in resources:
            v = data[wl].get(r)
            if isinstance(v, float):
                ratio = v / base if base else None
                row.append("%s (%s)" % (fmt_ns(v), fmt_ratio(ratio)) if ratio else fmt_ns(v))
            elif isinstance(v, tuple):
                row.append("ERROR " + notes.ref("pmr %s, %s: %s" % (r, wl, v[1])))
            elif r in failed:
                row.append(status_cell(failed[r][0], failed[r][1], notes, "pmr " + r))
            else:
                row.append("")
        rows.append(row)
    lines += md_table(["workload"] + resources, rows) + [""]
    counted = ordered({r for d in extra.values() for r in d}, RESOURCE_ORDER)
    if counted:
        lines += ["Syscalls per op of the guarded resources (arena stats), and allocations "
                  "served unguarded when the guard budget ran out:", ""]
        rows = []
        for wl in sorted(extra, key=case_sort_key):
            row = [wl]
            for r in counted:
                v = extra[wl].get(r)
                row.append("" if v is None else "%.2f%s" % (v[0], " (%d unguarded)" % v[1] if v[1] else ""))
            rows.append(row)
        lines += md_table(["workload"] + counted, rows) + [""]
    return lines, data


def floor_table(out, notes):
    runs = collect_suite(out, "floor")
    if not runs:
        return ["No syscall_floor_bench results.", ""]
    name, status, detail, rows = runs[0]
    lines = ["## syscall floor: one page of each kernel operation", ""]
    if status != "ok":
        lines += ["syscall_floor_bench: " + status_cell(status, detail, notes, "syscall_floor_bench"), ""]
    table = []
    for case in sorted(rows):
        row = rows[case]
        if "error" in row:
            table.append([case, "skipped: " + row["error"]])
        else:
            ns = ns_per_op(row)
            extra = " (one call over %d pages)" % row["pages_per_call"] if row.get("pages_per_call") else ""
            table.append([case, fmt_ns(ns) + extra if ns else "?"])
    lines += md_table(["operation", "per op"], table) + [""]
    return lines


def collect_programs(out):
    """progs[program][alloc] = {'status','detail','median'}"""
    progs = {}
    for rec in read_tsv(os.path.join(out, "programs.tsv")):
        if len(rec) < 3:
            continue
        alloc, prog, status = rec[0], rec[1], rec[2]
        detail = rec[3] if len(rec) > 3 else ""
        times = [float(t) for t in rec[4:] if t]
        progs.setdefault(prog, {})[alloc] = {
            "status": status, "detail": detail,
            "median": statistics.median(times) if times and status in ("ok", "degraded") else None,
            "runs": len(times)}
    return progs


def programs_measured(progs):
    return {a for p in progs.values() for a, e in p.items() if e["status"] != "missing"}


def programs_table(progs, notes):
    if not progs:
        return ["No real-program results.", ""]
    allocs = ordered(programs_measured(progs), ALLOC_ORDER)
    lines = ["## real programs: wall time, median (ratio to glibc)", "",
             "`python3` = /usr/bin/python3 with PYTHONMALLOC=malloc on bench/programs/alloc_heavy.py; "
             "`gcc_c` = gcc -O2 -c bench/programs/compile_me.c (the preload reaches cc1 and as); "
             "`sqlite3` = sqlite3 :memory: < bench/programs/queries.sql. Output is compared with "
             "glibc's where the program prints a checksum.", ""]
    runs_max = max(e["runs"] for p in progs.values() for e in p.values())
    rows = []
    for prog in sorted(progs):
        base = progs[prog].get(BASELINE, {}).get("median")
        row = [prog]
        for a in allocs:
            e = progs[prog].get(a)
            if e is None:
                row.append("")
            elif e["median"] is not None:
                r = e["median"] / base if base else None
                cell = "%.3f s (%s)" % (e["median"], fmt_ratio(r)) if r else "%.3f s" % e["median"]
                if e["runs"] == 1 and runs_max > 1:
                    cell += " ¹"
                if e["status"] == "degraded":
                    cell += " † " + notes.ref("%s: degraded, %s" % (ALLOC_LABEL.get(a, a), e["detail"]))
                row.append(cell)
            else:
                row.append(status_cell(e["status"], e["detail"], notes, ALLOC_LABEL.get(a, a)))
        rows.append(row)
    lines += md_table(["program"] + [ALLOC_LABEL.get(a, a) for a in allocs], rows) + [""]
    if any("¹" in c for r in rows for c in r):
        lines += ["¹ one run only: runs this slow are not repeated (see bench/run).", ""]
    return lines


# ---- plots --------------------------------------------------------------------

def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        return True
    except Exception:
        return False


COLORS = {"glibc": "#4c72b0", "preload_floor": "#64b5cd", "jemalloc": "#55a868",
          "ga_full_guard": "#c44e52", "ga_full_mprotect": "#dd8452", "ga_fast": "#8172b3",
          "ga_sample1000": "#937860", "ga_sample1000_fast": "#ccb974", "efence": "#da8bc3",
          "duma": "#8c8c8c"}


def plot_malloc_bars(results, path):
    import matplotlib.pyplot as plt
    allocs = ordered(measured(results), ALLOC_ORDER)
    # malloc_free at its smallest live set only: how cost grows with the live
    # set is the scaling plot's job, and all of them make an unreadable chart.
    cases = sorted({c for a in results.values() for c in a}, key=case_sort_key)
    smallest = {}
    for c in cases:
        m = re.match(r"(malloc_free/size:\d+)/live:(\d+)", c)
        if m:
            smallest[m.group(1)] = min(smallest.get(m.group(1), 1 << 62), int(m.group(2)))
    cases = [c for c in cases if not re.match(r"malloc_free/", c)
             or c.endswith("/live:%d" % smallest[c.rsplit("/", 1)[0]])]
    n, k = len(cases), len(allocs)
    height = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(11, max(4, 0.15 * n * k + 1.5)))
    vals = [ns_per_op(e["row"]) for a in results.values() for e in a.values() if e["row"]]
    xmax = max([v for v in vals if v] or [1]) * 3
    for j, a in enumerate(allocs):
        for i, c in enumerate(cases):
            y = i + (j - (k - 1) / 2) * height
            e = results[a].get(c)
            if e is None:
                continue
            v = ns_per_op(e["row"]) if e["row"] else None
            if v:
                ax.barh(y, v, height=height, color=COLORS.get(a), hatch="////" if degraded(e) else None,
                        edgecolor="white" if degraded(e) else None)
            else:
                label = e["status"].split(":")[0].split(" ")[0]
                ax.text(1.2, y, "%s: %s" % (ALLOC_LABEL.get(a, a), label), va="center", fontsize=6,
                        color=COLORS.get(a, "black"))
    ax.set_xscale("log")
    ax.set_xlim(1, xmax)
    ax.set_yticks(range(n))
    ax.set_yticklabels(cases, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ns per op (log scale; lower is better)")
    ax.set_title("malloc_bench: ns/op per allocator per workload (median; hatched: served unguarded)",
                 fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(handles=legend_patches(allocs), fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def legend_patches(allocs):
    """One legend entry per allocator, whether or not it drew a bar (an
    allocator that crashed everywhere must still be named)."""
    from matplotlib.patches import Patch
    return [Patch(color=COLORS.get(a), label=ALLOC_LABEL.get(a, a)) for a in allocs]


def scaling_series(results, workload_prefix):
    """{alloc: (points, degraded_points, fails)} for cases 'prefix.../live:N';
    points are (live, ns), fails are (live, status)."""
    series = {}
    for a, cases in results.items():
        pts, weak, fails = [], [], []
        for c, e in cases.items():
            if not c.startswith(workload_prefix):
                continue
            m = re.search(r"live:(\d+)", c)
            if not m:
                continue
            live = int(m.group(1))
            v = ns_per_op(e["row"]) if e["row"] else None
            if v and degraded(e):
                weak.append((live, v))
            elif v:
                pts.append((live, v))
            elif e["status"] != "missing":
                fails.append((live, e["status"].split(":")[0]))
        if pts or weak or fails:
            series[a] = (sorted(pts), sorted(weak), sorted(fails))
    return series


def plot_scaling(results, path):
    import matplotlib.pyplot as plt
    panels = [("malloc_free/size:16/", "malloc/free 16 B beside N live 16-B blocks"),
              ("random_sizes/", "random sizes 16 B–4 KiB, N live blocks")]
    panels = [p for p in panels if scaling_series(results, p[0])]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.6), squeeze=False)
    handles = {}
    for ax, (prefix, title) in zip(axes[0], panels):
        series = scaling_series(results, prefix)
        values = [v for s in series.values() for v in [p[1] for p in s[0] + s[1]]]
        top = max(values or [1]) * 3
        order = ordered(series.keys(), ALLOC_ORDER)
        for idx, a in enumerate(order):
            pts, weak, fails = series[a]
            color = COLORS.get(a)
            if pts:
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color,
                               label=ALLOC_LABEL.get(a, a))
                handles.setdefault(a, h)
            for live, v in weak:
                # Unguarded fallback: not the allocator as configured; hollow,
                # not joined to the line.
                ax.plot([live], [v], marker="o", markerfacecolor="none", markersize=9, color=color,
                        linestyle="none")
                ax.annotate("unguarded\n(budget used up)", (live, v), fontsize=6, color=color,
                            textcoords="offset points", xytext=(-50, 6))
            for live, status in fails:
                if status == "skipped":
                    continue
                y = top * (1.35 ** idx)  # stagger so X markers do not hide each other
                (h,) = ax.plot([live], [y], marker="X", markersize=9, color=color, linestyle="none")
                handles.setdefault(a, h)
                ax.annotate("%s: %s" % (ALLOC_LABEL.get(a, a), status), (live, y), fontsize=7,
                            color=color, textcoords="offset points", xytext=(-8, 0), ha="right",
                            va="center")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("live blocks held (log)")
        ax.set_ylabel("ns per op (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(which="both", alpha=0.3)
    labels = ordered(handles.keys(), ALLOC_ORDER)
    fig.legend([handles[a] for a in labels], [ALLOC_LABEL.get(a, a) for a in labels],
               loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle("ns/op against live-set size (X: crashed or timed out there; hollow: served "
                 "unguarded)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_programs(progs, path):
    import matplotlib.pyplot as plt
    allocs = ordered(programs_measured(progs), ALLOC_ORDER)
    names = sorted(progs)
    k = len(allocs)
    width = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for j, a in enumerate(allocs):
        for i, prog in enumerate(names):
            base = progs[prog].get(BASELINE, {}).get("median")
            e = progs[prog].get(a)
            x = i + (j - (k - 1) / 2) * width
            if e and e["median"] and base:
                weak = e["status"] == "degraded"
                ax.bar(x, e["median"] / base, width=width, color=COLORS.get(a),
                       hatch="////" if weak else None, edgecolor="white" if weak else None)
            elif e and e["status"] != "missing":
                ax.text(x, 1.05, e["status"].split(":")[0].split(" ")[0], rotation=90, fontsize=7,
                        ha="center", va="bottom", color=COLORS.get(a))
    ax.set_yscale("log")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("wall time / glibc (log)")
    ax.set_title("real programs: wall time relative to glibc (median; hatched: served unguarded)",
                 fontsize=10)
    ax.legend(handles=legend_patches(allocs), fontsize=7)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pmr(data, path):
    import matplotlib.pyplot as plt
    if not data:
        return
    wls = sorted(data, key=case_sort_key)
    resources = ordered({r for d in data.values() for r in d}, RESOURCE_ORDER)
    k = len(resources)
    height = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(10, max(4, 0.16 * len(wls) * k + 1.5)))
    palette = plt.get_cmap("tab10")
    for j, r in enumerate(resources):
        for i, wl in enumerate(wls):
            v = data[wl].get(r)
            if isinstance(v, float):
                ax.barh(i + (j - (k - 1) / 2) * height, v, height=height, color=palette(j % 10),
                        label=r if i == 0 else None)
    ax.set_xscale("log")
    ax.set_yticks(range(len(wls)))
    ax.set_yticklabels(wls, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ns per op (log scale; lower is better)")
    ax.set_title("pmr_bench: ns/op per memory resource (median)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gnuplot_fallback(out, results, progs):
    """Minimal versions of the two main plots when matplotlib is missing."""
    if not shutil.which("gnuplot"):
        return []
    made = []
    allocs = ordered(measured(results), ALLOC_ORDER)
    cases = sorted({c for a in results.values() for c in a}, key=case_sort_key)
    dat = os.path.join(out, "malloc_ns_per_op.dat")
    with open(dat, "w") as f:
        f.write("case " + " ".join(allocs) + "\n")
        for c in cases:
            vals = []
            for a in allocs:
                e = results[a].get(c)
                v = ns_per_op(e["row"]) if e and e["row"] else None
                vals.append("%.3f" % v if v else "NaN")
            f.write('"%s" %s\n' % (c, " ".join(vals)))
    script = """set terminal pngcairo size 1400,700 font ',8'
set output '%s'
set style data histograms
set style histogram clustered gap 1
set style fill solid border -1
set logscale y
set ylabel 'ns per op (log)'
set xtics rotate by -45
set key outside right
set title 'malloc_bench: ns/op per allocator per workload (median)'
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (os.path.join(out, "malloc_ns_per_op.png"), len(allocs) + 1, dat)
    if subprocess.run(["gnuplot"], input=script, text=True).returncode == 0:
        made.append("malloc_ns_per_op.png")
    lines = []
    for a in allocs:
        series = scaling_series({a: results[a]}, "malloc_free/size:16/").get(a)
        if series and series[0]:
            d = os.path.join(out, "scaling_%s.dat" % a)
            with open(d, "w") as f:
                for x, y in series[0]:
                    f.write("%d %.3f\n" % (x, y))
            lines.append("'%s' using 1:2 with linespoints title '%s'" % (d, ALLOC_LABEL.get(a, a)))
    if lines:
        script = """set terminal pngcairo size 900,600 font ',9'
set output '%s'
set logscale xy
set xlabel 'live blocks held'
set ylabel 'ns per op'
set title 'malloc/free 16 B against live-set size'
plot %s
""" % (os.path.join(out, "live_set_scaling.png"), ", ".join(lines))
        if subprocess.run(["gnuplot"], input=script, text=True).returncode == 0:
            made.append("live_set_scaling.png")
    return made


# ---- main ---------------------------------------------------------------------

def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    out = sys.argv[1]
    env = read_env(out)
    notes = Notes()

    results = collect_malloc(out)
    progs = collect_programs(out)
    malloc_lines = malloc_section(results, notes)
    program_lines = programs_table(progs, notes)
    pmr_lines, pmr_data = pmr_table(out, notes)
    floor_lines = floor_table(out, notes)

    plots = []
    if have_matplotlib():
        if results:
            plot_malloc_bars(results, os.path.join(out, "malloc_ns_per_op.png"))
            plots.append("malloc_ns_per_op.png")
            if plot_scaling(results, os.path.join(out, "live_set_scaling.png")):
                plots.append("live_set_scaling.png")
        if progs:
            plot_programs(progs, os.path.join(out, "real_programs.png"))
            plots.append("real_programs.png")
        if pmr_data:
            plot_pmr(pmr_data, os.path.join(out, "pmr_ns_per_op.png"))
            plots.append("pmr_ns_per_op.png")
    elif results:
        plots = gnuplot_fallback(out, results, progs)

    def e(key, default="?"):
        return "; ".join(env.get(key, [default]))

    lines = ["# guardarena benchmark results", "",
             "| | |", "|---|---|",
             "| scale | %s (%s repetition(s), medians) |" % (e("scale"), e("repetitions")),
             "| date | %s |" % e("date"),
             "| commit | %s |" % e("commit"),
             "| machine | %s, kernel %s, glibc %s |" % (e("cpu"), e("kernel"), e("glibc")),
             "| vm.max_map_count | %s |" % e("max_map_count"),
             "| load average start → end | %s → %s |" % (e("loadavg_at_start"), e("loadavg_at_end")),
             "| runner time | %s s |" % e("runner_seconds"),
             ""]
    missing = env.get("allocator_missing", [])
    if missing:
        lines += ["Not measured: " + "; ".join(m.replace("|", ": ", 1) for m in missing) + ".", ""]
    lines += ["Ratios compare with glibc (pmr: with new_delete_resource) measured in this same run "
              "on this machine; the machine is shared and noisy, so treat differences under ~10% "
              "as noise. CRASH/TIMEOUT/EXIT/ERROR cells are runs that did not finish; the numbered "
              "notes at the end give the signal and the allocator's last message. \"not run\" "
              "cells were skipped on purpose (reason in the note). † marks a run that finished "
              "but with guardarena serving blocks unguarded (guard budget used up), so it "
              "measures the fallback; it is left out of the geomean.", ""]
    if plots:
        lines += ["Plots: " + ", ".join("[%s](%s)" % (p, p) for p in plots), ""]
        lines += ["![%s](%s)" % (p, p) for p in plots if p in ("live_set_scaling.png",)] + [""]
    lines += malloc_lines + program_lines + pmr_lines + floor_lines
    if notes.items:
        lines += ["## notes", ""] + notes.lines() + [""]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("wrote %s (%d plot(s))" % (os.path.join(out, "summary.md"), len(plots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
