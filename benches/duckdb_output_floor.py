"""How long DuckDB takes only to write the files a phm run wrote.

Loads every output table of a phm output directory (membership, explanations,
near misses, attrition, combinations of each cohort) into DuckDB first, then
times writing all of them as Parquet and CSV, as a phm run does: a floor under
any engine's time for the same run, since no cohort is computed.

    python3 benches/duckdb_output_floor.py PHM_OUT REPEATS
"""

import glob
import os
import sys
import tempfile
import time

import duckdb

phm_out, repeats = sys.argv[1], int(sys.argv[2])
names = ["membership", "explanations", "near_misses", "attrition", "combinations"]
con = duckdb.connect()
con.execute("set threads = 2")
tables = []
for i, cohort in enumerate(sorted(glob.glob(f"{phm_out}/*/run.json"))):
    d = os.path.dirname(cohort)
    for n in names:
        con.execute(f"create temp table t{i}_{n} as select * from read_parquet('{d}/{n}.parquet')")
        tables.append(f"t{i}_{n}")
rows = sum(con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)
with tempfile.TemporaryDirectory() as out:
    for _ in range(repeats):
        t = time.perf_counter()
        for table in tables:
            con.execute(f"copy {table} to '{out}/{table}.parquet' (format parquet)")
            con.execute(f"copy {table} to '{out}/{table}.csv' (header)")
        print(f"  duckdb writes the {len(tables) // len(names)} cohorts' outputs ({rows:,} rows),"
              f" Parquet and CSV: {time.perf_counter() - t:.2f} s")
