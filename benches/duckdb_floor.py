#!/usr/bin/env python3
"""DuckDB's time for the core of the slice: events joined to value-set codes,
then per person and value set the latest date, the count and the value range.
It runs once for DM_REG's two value sets and once for every value set of the
shipped cohorts. This gives the scale of the all-cohort versus one-cohort
ratio for a peer engine on the same files.

    python3 benches/duckdb_floor.py STORE RELEASE [REPEATS]

Run it from the repository root, after a release build
(`$CARGO_TARGET_DIR/release/phm`). It expands the pinned value sets itself.
"""
import glob, os, subprocess, sys, tempfile, time, tomllib
import duckdb

store, release = sys.argv[1], sys.argv[2]
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 4
phm = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/phm-target")), "release/phm")
pinned = {}
for f in sorted(glob.glob("cohorts/*/*.toml")):
    d = tomllib.load(open(f, "rb"))
    pinned.update(d.get("valuesets", {}))
con = duckdb.connect()
con.execute("set threads = 2")
con.execute("create table vs(vs varchar, code bigint)")
with tempfile.TemporaryDirectory() as tmp:
    for vs, version in sorted(pinned.items()):
        out = f"{tmp}/{vs}.csv"
        r = subprocess.run([phm, "valueset", "expand", f"{vs}@{version}", "--release", release, "--out", out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"  {vs}@{version}: not expanded ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}); skipped")
            continue
        con.execute(f"insert into vs select '{vs}', code::bigint from read_csv('{out}')")
events = f"{store}/canonical/events/*/*.parquet"
def query(sets):
    names = ",".join(f"'{s}'" for s in sets)
    return f"""select count(*) from (
      select e.person_key, vs.vs, max(e.event_date), count(*), min(e.value), max(e.value)
      from read_parquet('{events}') e join vs on e.snomed_concept_id = vs.code
      where vs.vs in ({names}) group by 1, 2)"""
every = [r[0] for r in con.execute("select distinct vs from vs order by 1").fetchall()]
for label, sets in [("DM_COD + DMRES_COD", ["DM_COD", "DMRES_COD"]), (f"all {len(every)} value sets", every)]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = con.execute(query(sets)).fetchall()[0][0]
        times.append(time.perf_counter() - t)
    print(f"  duckdb {label}: {n} person-value-set rows; " + " / ".join(f"{x:.3f}" for x in times) + " s")
