#!/usr/bin/env bash
# Cohort benchmark: one register cohort (DM_REG) and all shipped cohorts in one
# run with `phm cohort run` (release build), against a hand-written DuckDB query
# for DM_REG over the same canonical Parquet files, as counts per practice and
# as the membership written to Parquet. The DuckDB query implements the
# documented semantics independently; its per-practice counts and its included
# persons must equal phm's. Then benches/duckdb_equal_work.py does in DuckDB
# what a phm run does for DM_REG (every output, with evidence, as Parquet and
# CSV) and checks each file against phm's, and benches/duckdb_output_floor.py
# times DuckDB only writing the files of phm's ten-cohort run. With a binary
# built with `--features ballista` (PHM_FEATURES=ballista), the phm runs are
# also timed on a local Ballista cluster (`phm cluster`).
#
#   benches/cohort.sh [PATIENTS] [PRACTICES] [WORKDIR] [REPEATS]
#
# Builds the store with synth + ingest unless WORKDIR/store already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
patients=${1:-100000}
practices=${2:-12}
work=${3:-/tmp/phm-bench100k}
repeats=${4:-3}
index=2026-03-31
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/phm-target}"
cargo build --release --quiet ${PHM_FEATURES:+--features "$PHM_FEATURES"}
phm="$CARGO_TARGET_DIR/release/phm"
mkdir -p "$work"
python3 -c 'import duckdb' 2>/dev/null || pip install --quiet duckdb

if [ ! -d "$work/store/canonical" ]; then
  "$phm" synth --out "$work/landing" --practices "$practices" --patients "$patients" --seed 42
  "$phm" ingest --landing "$work/landing" --store "$work/store"
fi
release="$work/terminology/fixture"
if [ ! -f "$release/release.json" ]; then
  "$phm" terminology import --rf2 terminology/fixture/rf2 --dmd terminology/fixture/dmd \
    --ctv3-map terminology/fixture/ctv3/SRCtv3ToSnomed.txt --out "$release" > /dev/null
fi

echo "phm $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores"
python3 - "$work/store" <<'PY'
import duckdb, sys
s = sys.argv[1]
for t in ["patients", "events", "medications"]:
    n = duckdb.sql(f"select count(*) from read_parquet('{s}/canonical/{t}/*/*.parquet')").fetchall()[0][0]
    print(f"  {t}: {n:,} rows")
PY

timed() { # label, command...
  local label=$1; shift
  local best=""
  for _ in $(seq "$repeats"); do
    /usr/bin/time -f "%e %M" "$@" > "$work/$label.out" 2> "$work/$label.time" || { cat "$work/$label.time"; exit 1; }
    local t; t=$(tail -n 1 "$work/$label.time")
    echo "  $label run: ${t% *} s wall, ${t#* } KiB peak RSS"
  done
}

echo "phm cohort run DM_REG:"
timed dm_reg "$phm" cohort run DM_REG --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-one"
echo "phm cohort run --all ($(ls -d cohorts/*/ | wc -l) cohorts, one run):"
timed all "$phm" cohort run --all --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-all"

# The same runs on a Ballista cluster on this machine (a scheduler and two
# executors of one core each, `phm cluster`), when the binary was built with
# `--features ballista`; their outputs must be the same bytes as the local
# runs'.
if "$phm" cluster --help > /dev/null 2>&1; then
  "$phm" cluster --executors 2 --cores 1 > "$work/cluster.out" 2> "$work/cluster.err" &
  cluster_pid=$!
  trap 'kill $cluster_pid 2> /dev/null || true' EXIT
  for _ in $(seq 100); do grep -q "ballista://" "$work/cluster.out" 2> /dev/null && break; sleep 0.2; done
  engine=$(grep -o "ballista://localhost:[0-9]*" "$work/cluster.out")
  echo "phm cohort run DM_REG on $engine:"
  timed cluster_one "$phm" cohort run DM_REG --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-cluster-one" --engine "$engine"
  echo "phm cohort run --all on $engine:"
  timed cluster_all "$phm" cohort run --all --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-cluster-all" --engine "$engine"
  diff -r "$work/out-one" "$work/out-cluster-one" > /dev/null && diff -r "$work/out-all" "$work/out-cluster-all" > /dev/null \
    || { echo "cluster outputs differ from local ones"; exit 1; }
  echo "  cluster outputs are the same bytes as the local runs'"
  kill "$cluster_pid"
fi

# Each shipped cohort in a run of its own, once: what the shared run saves.
echo "phm cohort run, each cohort alone:"
sum=0
for dir in cohorts/*/; do
  c=$(basename "$dir")
  start=$(date +%s.%N)
  "$phm" cohort run "$c" --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-single" > /dev/null
  t=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$(date +%s.%N)")
  echo "  $c: $t s"
  sum=$(python3 -c "import sys; print(f'{float(sys.argv[1]) + float(sys.argv[2]):.2f}')" "$sum" "$t")
done
echo "  sum of the ten runs: $sum s"

# DuckDB: the same cohort by hand, codes from phm's own expansion of the pinned value sets.
dm=$(python3 -c "import tomllib;d=tomllib.load(open('cohorts/DM_REG/2025.1.toml','rb'));print(d['valuesets']['DM_COD'])")
res=$(python3 -c "import tomllib;d=tomllib.load(open('cohorts/DM_REG/2025.1.toml','rb'));print(d['valuesets']['DMRES_COD'])")
"$phm" valueset expand "DM_COD@$dm" --release "$release" --out "$work/dm_cod.csv" > /dev/null
"$phm" valueset expand "DMRES_COD@$res" --release "$release" --out "$work/dmres_cod.csv" > /dev/null
python3 - "$work" "$index" "$repeats" <<'PY'
import duckdb, sys, time
work, index, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = f"{work}/store/canonical"
sql = f"""
with codes as (
  select code::bigint as code, 'dm' as vs from read_csv('{work}/dm_cod.csv')
  union all select code::bigint, 'res' from read_csv('{work}/dmres_cod.csv')
), reg as (
  select person_key, practice, patient_id,
         row_number() over (partition by person_key order by start_date desc, practice desc) as rn
  from read_parquet('{s}/registrations/*/*.parquet')
  where registration_type = 'gms' and start_date <= date '{index}'
    and (end_date is null or end_date > date '{index}')
), pop as (
  select r.person_key, r.practice
  from reg r join read_parquet('{s}/patients/*/*.parquet') p
    on p.practice = r.practice and p.patient_id = r.patient_id
  where r.rn = 1 and not coalesce(p.is_test_patient, false)
    and (p.date_of_death is null or p.date_of_death > date '{index}')
    and p.date_of_birth is not null
    and date_part('year', date '{index}') - date_part('year', p.date_of_birth)
        - case when strftime(date '{index}', '%m%d') < strftime(p.date_of_birth, '%m%d') then 1 else 0 end >= 17
), ev as (
  select e.person_key, c.vs,
         case e.date_precision when 'Y' then date_trunc('year', e.event_date)
                               when 'YM' then date_trunc('month', e.event_date)
                               else e.event_date end::date as d_start,
         case e.date_precision when 'Y' then (date_trunc('year', e.event_date) + interval 1 year - interval 1 day)
                               when 'YM' then (date_trunc('month', e.event_date) + interval 1 month - interval 1 day)
                               else e.event_date end::date as d_end
  from read_parquet('{s}/events/*/*.parquet') e join codes c on e.snomed_concept_id = c.code
  where e.event_date is not null and e.date_flag is null
), dm as (
  select person_key, max(d_start) as dm_date from ev
  where vs = 'dm' and d_end <= date '{index}' group by 1
), resolved as (
  select distinct ev.person_key from ev join dm using (person_key)
  where ev.vs = 'res' and ev.d_start > dm.dm_date and ev.d_end <= date '{index}'
)
"""
counts = sql + """
select pop.practice, count(*) as n
from pop join dm using (person_key)
where pop.person_key not in (select person_key from resolved)
group by 1 order by 1
"""
# The cohort itself: every person in the population with the included flag,
# written as Parquet (phm's membership file, without the other outputs).
members = sql + """
select pop.person_key, pop.practice,
       dm.person_key is not null and resolved.person_key is null as included
from pop left join dm using (person_key) left join resolved using (person_key)
order by pop.person_key
"""
con = duckdb.connect()
con.execute("set threads = 2")
def timed(label, run):
    for i in range(repeats):
        t = time.perf_counter()
        out = run()
        fresh = " (fresh connection)" if i == 0 and label.startswith("counts") else ""
        print(f"  duckdb {label}: {time.perf_counter() - t:.2f} s{fresh}")
    return out
rows = timed("counts per practice", lambda: con.execute(counts).fetchall())
timed("membership to Parquet", lambda: con.execute(
    f"copy ({members}) to '{work}/duck_members.parquet' (format parquet)"))
duck = dict(rows)
phm = dict(con.execute(f"""
  select practice, count(*) from read_parquet('{work}/out-one/DM_REG@2025.1/membership.parquet')
  where included group by 1""").fetchall())
assert duck == phm, f"DM_REG per practice differs: duckdb {duck} phm {phm}"
print(f"  DM_REG per-practice counts agree: {sum(duck.values())} persons over {len(duck)} practices")
included = lambda f: {r[0] for r in con.execute(
    f"select person_key from read_parquet('{f}') where included").fetchall()}
assert included(f"{work}/duck_members.parquet") == included(f"{work}/out-one/DM_REG@2025.1/membership.parquet")
print("  DM_REG included persons agree person by person")
PY

# The same cohort with the work a phm run does (every output file, evidence
# columns, Parquet and CSV), checked against phm's files person by person.
echo "DuckDB, DM_REG with phm's outputs:"
python3 benches/duckdb_equal_work.py "$work" "$index" "$work/out-one/DM_REG@2025.1" "$repeats"
echo "DuckDB, only writing the files of phm's ten-cohort run (no cohort computed):"
python3 benches/duckdb_output_floor.py "$work/out-all" "$repeats"
