#!/usr/bin/env bash
# End-to-end benchmark: synth then ingest of a full-size PCN, release build,
# with wall time and peak memory per step, and an independent DuckDB read of
# the canonical store to cross-check the row counts ingest reported.
#
#   benches/e2e.sh [PATIENTS] [PRACTICES] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
patients=${1:-50000}
practices=${2:-6}
work=${3:-/tmp/phm-bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/phm-target}"
cargo build --release --quiet
phm="$CARGO_TARGET_DIR/release/phm"
rm -rf "$work" && mkdir -p "$work"

timed() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" > "$work/$label.out" 2> "$work/$label.time" || { cat "$work/$label.time"; exit 1; }
  tail -n 1 "$work/$label.time"
}

echo "phm $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $patients patients, $practices practices"
timed synth "$phm" synth --out "$work/landing" --practices "$practices" --patients "$patients" --seed 42 --deltas 2
echo "  landing: $(du -sh "$work/landing" | cut -f1), $(find "$work/landing" -name '*.parquet' | wc -l) files"
timed ingest "$phm" ingest --landing "$work/landing" --store "$work/store"
cp "$work/store/reports/ingest.json" "$work/ingest-report.json"
echo "  store: $(du -sh "$work/store" | cut -f1)"
timed reingest "$phm" ingest --landing "$work/landing" --store "$work/store"
cat "$work/ingest.out"

if python3 -c 'import duckdb' 2>/dev/null || pip install --quiet duckdb 2>/dev/null; then
  python3 - "$work/store" "$work/ingest-report.json" <<'PY'
import duckdb, json, sys
store = sys.argv[1]
report = json.load(open(sys.argv[2]))
for table in ["patients", "events", "medications"]:
    rows = dict(duckdb.sql(f"select practice, count(*) from read_parquet('{store}/canonical/{table}/*/*.parquet') group by 1").fetchall())
    for p in report["practices"]:
        loaded = next(c["loaded"] for c in p["canonical"] if c["table"] == table)
        assert rows.get(p["practice"], 0) == loaded, (table, p["practice"], rows.get(p["practice"]), loaded)
    print(f"duckdb cross-check {table}: {sum(rows.values())} rows, matches the ingest report")
PY
fi
