"""The cohort benchmark's timing loop (run by `benches/cohort.sh`).

Times, alternating the order each round, on one store:

- `phm DM_REG`: `phm cohort run DM_REG` (one register cohort, every output);
- `phm all`: `phm cohort run --all` (every shipped cohort in one run);
- `phm each alone`: every shipped cohort in a run of its own, summed;
- `duckdb DM_REG`: `benches/duckdb_equal_work.py`, DuckDB doing DM_REG with
  every output phm writes, checked row by row against phm's (the query's
  time in a fresh connection, as that script reports it);
- `raw scan`: DuckDB reading every value of the columns DM_REG reads from
  the canonical tables (a floor: no join, no output);
- with `--cluster`, `phm DM_REG` and `phm all` again on a local Ballista
  cluster (`phm cluster`, two executors of one core), whose outputs must be
  the local runs' bytes.

Prints medians, ranges, peak RSS and the ratios the targets are set on, and
appends them with the machine and the command to `benches/RESULTS.md`.

    python3 benches/cohort_bench.py --phm BIN --store STORE --release REL \
        --work DIR --scale NAME --repeats N [--cluster] [--duckdb-python PY]
"""

import argparse
import datetime
import filecmp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

INDEX = "2026-03-31"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# What DM_REG reads: the population (registrations, patients) and its value
# sets' events, with the columns the evidence shows.
SCAN = {
    "registrations": "person_key, practice, patient_id, registration_type, start_date, end_date",
    "patients": "person_key, practice, patient_id, is_test_patient, date_of_birth, date_of_death",
    "events": "person_key, practice, row_order, snomed_concept_id, event_date, date_precision, "
    "date_flag, mapping_kind, code_system, source_code, source_term, value, unit, comparator",
}


def timed(cmd, env=None):
    """(wall seconds, peak RSS KiB, stdout) of a command; fails loudly."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name, *cmd],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
        wall, rss = t.read().split()[-2:]
    return float(wall), int(rss), p.stdout


def scan(store):
    """Child process: reads every value of SCAN's columns; prints seconds."""
    import duckdb
    con = duckdb.connect()
    con.execute("set threads = 2")
    t = time.perf_counter()
    for table, cols in SCAN.items():
        con.execute(f"select count(*), sum(hash({cols})) "
                    f"from read_parquet('{store}/canonical/{table}/*/*.parquet')").fetchall()
    print(f"scan {time.perf_counter() - t:.3f}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--scan":
        return scan(sys.argv[2])
    a = argparse.ArgumentParser()
    a.add_argument("--phm", required=True)
    a.add_argument("--store", required=True)
    a.add_argument("--release", required=True)
    a.add_argument("--work", required=True)
    a.add_argument("--scale", required=True)
    a.add_argument("--repeats", type=int, default=5)
    a.add_argument("--cluster", action="store_true")
    a.add_argument("--cluster-memory", help="each executor's memory pool (phm cluster --memory-limit)")
    a.add_argument("--duckdb-python", default=sys.executable)
    a.add_argument("--command", default="benches/cohort.sh")
    o = a.parse_args()
    work, py = o.work, o.duckdb_python
    os.makedirs(work, exist_ok=True)
    cohorts = sorted(d for d in os.listdir(f"{REPO}/cohorts") if os.path.isdir(f"{REPO}/cohorts/{d}"))

    def phm(out, *extra):
        return [o.phm, "cohort", "run", *extra, "--store", o.store, "--release", o.release,
                "--index-date", INDEX, "--out", f"{work}/{out}"]

    # DuckDB's equal work reads phm's value-set expansions.
    for vs, file in [("DM_COD", "dm_cod.csv"), ("DMRES_COD", "dmres_cod.csv")]:
        with open(f"{REPO}/cohorts/DM_REG/2025.1.toml", "rb") as f:
            version = tomllib.load(f)["valuesets"][vs]
        subprocess.run([o.phm, "valueset", "expand", f"{vs}@{version}", "--release", o.release,
                        "--out", f"{work}/{file}"], check=True, capture_output=True)
    # duckdb_equal_work.py reads WORK/store/canonical: point it at the store.
    link = f"{work}/store"
    if os.path.realpath(link) != os.path.realpath(o.store):
        if os.path.islink(link):
            os.remove(link)
        os.symlink(os.path.abspath(o.store), link)

    cluster = engine = None
    if o.cluster:
        log = open(f"{work}/cluster.out", "w+")
        memory = ["--memory-limit", o.cluster_memory] if o.cluster_memory else []
        cluster = subprocess.Popen([o.phm, "cluster", "--executors", "2", "--cores", "1", *memory],
                                   stdout=log, stderr=subprocess.DEVNULL)
        for _ in range(300):
            log.seek(0)
            m = re.search(r"ballista://localhost:\d+", log.read())
            if m:
                engine = m.group(0)
                break
            time.sleep(0.2)
        else:
            cluster.kill()
            sys.exit("phm cluster did not start")

    def each_alone():
        wall, rss = 0.0, 0
        for c in cohorts:
            w, r, _ = timed(phm("out-each", c))
            wall, rss = wall + w, max(rss, r)
        return wall, rss

    def duck_equal():
        _, rss, out = timed([py, f"{HERE}/duckdb_equal_work.py", work, INDEX, f"{work}/out-one/DM_REG@2025.1", "0"])
        m = re.search(r"fresh connection: ([0-9.]+) s", out)
        assert "agree with phm's" in out, out
        return float(m.group(1)), rss

    def raw_scan():
        _, rss, out = timed([py, __file__, "--scan", o.store])
        return float(out.split()[-1]), rss

    runs = {
        "phm DM_REG": lambda: timed(phm("out-one", "DM_REG"))[:2],
        "phm all": lambda: timed(phm("out-all", "--all"))[:2],
        "phm each alone": each_alone,
        "duckdb DM_REG": duck_equal,
        "raw scan": raw_scan,
    }
    if engine:
        runs["cluster DM_REG"] = lambda: timed(phm("out-cluster-one", "DM_REG", "--engine", engine))[:2]
        runs["cluster all"] = lambda: timed(phm("out-cluster-all", "--all", "--engine", engine))[:2]

    try:
        # Once untimed: the outputs the checks read, and a warm page cache for all.
        for name in ["phm DM_REG", "phm all"] + (["cluster DM_REG", "cluster all"] if engine else []):
            runs[name]()
        if engine:
            for local, remote in [("out-one", "out-cluster-one"), ("out-all", "out-cluster-all")]:
                diff = filecmp.dircmp(f"{work}/{local}", f"{work}/{remote}")
                if not same_tree(diff):
                    sys.exit(f"cluster outputs differ from the local run's: {local} vs {remote}")
            print("cluster outputs are the same bytes as the local runs'")
        results = {k: [] for k in runs}
        names = list(runs)
        for i in range(o.repeats):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                results[name].append(runs[name]())
            print(f"round {i + 1}: " + ", ".join(f"{n} {results[n][-1][0]:.2f} s" for n in names), flush=True)
        cluster_rss = peak_rss(cluster.pid) if cluster else None
    finally:
        if cluster:
            # SIGTERM: the cluster removes its executors' shuffle files.
            cluster.terminate()
            try:
                cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cluster.kill()
                cluster.wait()

    block = report(o, results, engine is not None, cluster_rss)
    print("\n" + block)
    with open(f"{REPO}/benches/RESULTS.md", "a") as f:
        f.write("\n" + block)


def peak_rss(pid):
    """Peak resident KiB of a running process (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))


def same_tree(d):
    if d.left_only or d.right_only or d.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(d.left, d.right, d.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(s) for s in d.subdirs.values())


def report(o, results, cluster, cluster_rss=None):
    import duckdb
    med = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
    rss = {k: max(r for _, r in v) for k, v in results.items()}
    counts = [duckdb.sql(f"select count(*) from read_parquet('{o.store}/canonical/{t}/*/*.parquet')").fetchall()[0][0]
              for t in ["patients", "events", "medications"]]
    practices = len(os.listdir(f"{o.store}/canonical/patients"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1048576
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"### cohort benchmark, {o.scale} ({datetime.date.today()}, {rev})",
        "",
        f"Command: `{o.command}` ({o.repeats} rounds, order rotated each round). "
        f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB. Store: {counts[0]:,} patients over "
        f"{practices} practices, {counts[1]:,} events, {counts[2]:,} medication issues. DuckDB "
        f"{duckdb.__version__}, 2 threads; its times are the query's in a fresh connection, the others' "
        "the process's wall time.",
        "",
        "| run | median | range | peak RSS |",
        "|---|---|---|---|",
    ]
    for k, v in results.items():
        walls = [w for w, _ in v]
        lines.append(f"| {k} | {med[k]:.2f} s | {min(walls):.2f}–{max(walls):.2f} s | {rss[k] / 1048576:.2f} GiB |")
    ratios = [
        ("phm DM_REG / duckdb DM_REG", med["phm DM_REG"] / med["duckdb DM_REG"], "≤ 0.8"),
        ("phm all / phm each alone", med["phm all"] / med["phm each alone"], "≤ 0.5"),
        ("phm DM_REG / raw scan", med["phm DM_REG"] / med["raw scan"], "(floor)"),
    ]
    if cluster:
        ratios += [
            ("cluster DM_REG / phm DM_REG", med["cluster DM_REG"] / med["phm DM_REG"], "≤ 3"),
            ("cluster all / phm all", med["cluster all"] / med["phm all"], "≤ 3"),
        ]
    lines += ["", "| ratio | measured | target |", "|---|---|---|"]
    for name, value, target in ratios:
        lines.append(f"| {name} | {value:.2f} | {target} |")
    if cluster:
        lines += ["", "The cluster runs' outputs were the local runs' bytes. Their peak RSS is the "
                  f"client's; the cluster's process (scheduler and executors) peaked at "
                  f"{cluster_rss / 1048576:.2f} GiB over the whole benchmark."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
