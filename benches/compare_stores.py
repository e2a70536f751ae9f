#!/usr/bin/env python3
"""Compare two phm stores' content, file by file, ignoring row order.

Usage: compare_stores.py STORE_A STORE_B

Compares every Parquet file under canonical/, quarantine/ and
practices/*/source/ of the two stores: the same files, the same columns, and
the same rows as multisets (DuckDB `EXCEPT ALL` both ways). Prints one line
per file with row counts and differing-row counts only (never row values: the
stores hold patient identifiers). Exits 1 when anything differs.

Needs `duckdb` (pip install duckdb in a venv).
"""

import sys
from pathlib import Path

import duckdb


def files(root: Path) -> set[str]:
    out = set()
    for pattern in ["canonical/**/*.parquet", "quarantine/**/*.parquet", "practices/*/source/*.parquet"]:
        out.update(str(p.relative_to(root)) for p in root.glob(pattern))
    return out


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    fa, fb = files(a), files(b)
    differs = False
    for name in sorted(fa ^ fb):
        print(f"only in {'A' if name in fa else 'B'}: {name}")
        differs = True
    con = duckdb.connect()
    for name in sorted(fa & fb):
        pa, pb = str(a / name), str(b / name)
        cols_a = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pa}')").fetchall()]
        cols_b = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pb}')").fetchall()]
        if cols_a != cols_b:
            print(f"columns differ: {name}")
            differs = True
            continue
        n_a = con.execute(f"SELECT count(*) FROM read_parquet('{pa}')").fetchone()[0]
        n_b = con.execute(f"SELECT count(*) FROM read_parquet('{pb}')").fetchone()[0]
        only_a = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM read_parquet('{pa}') EXCEPT ALL SELECT * FROM read_parquet('{pb}'))"
        ).fetchone()[0]
        only_b = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM read_parquet('{pb}') EXCEPT ALL SELECT * FROM read_parquet('{pa}'))"
        ).fetchone()[0]
        same = n_a == n_b and only_a == 0 and only_b == 0
        differs |= not same
        print(f"{'same' if same else 'DIFFERS'}: {name} rows {n_a}/{n_b}, only in A {only_a}, only in B {only_b}")
    print("stores differ" if differs else f"stores equal ({len(fa)} files)")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
