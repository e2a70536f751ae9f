#!/usr/bin/env bash
# Cohort benchmark: phm cohort runs beside DuckDB doing equal work on the same
# store, alternating, with medians, ratios and peak RSS appended to
# benches/RESULTS.md (the loop is benches/cohort_bench.py; what it times is
# described there and in benches/README.md).
#
#   benches/cohort.sh SCALE [WORKDIR]
#
#   SCALE: pcn (50,000 patients, 6 practices), large (100,000, 12) or icb
#   (900,000, 120; by hand: give STORE=… the store benches/scale.sh built).
#
# Environment: REPEATS (rounds; default 5), STORE (an ingested store to use
# instead of building one in WORKDIR), PHM_FEATURES (cargo features; with
# `ballista` the runs are also timed on a local cluster, `phm cluster`), PHM
# (a binary to time instead of building one), CLUSTER_MEMORY (each executor's
# memory pool, e.g. 4GiB; without it Ballista sizes the pools from the
# machine's memory).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:?usage: benches/cohort.sh pcn|large|icb [WORKDIR]}
case "$scale" in
  pcn) patients=50000; practices=6 ;;
  large) patients=100000; practices=12 ;;
  icb) patients=900000; practices=120 ;;
  *) echo "unknown scale $scale; hint: pcn, large or icb" >&2; exit 2 ;;
esac
work=${2:-/tmp/phm-cohort-$scale}
repeats=${REPEATS:-5}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/phm-target}"
if [ -n "${PHM:-}" ]; then
  phm=$PHM
else
  cargo build --release --quiet ${PHM_FEATURES:+--features "$PHM_FEATURES"}
  phm="$CARGO_TARGET_DIR/release/phm"
fi
mkdir -p "$work"

# DuckDB from PyPI in a venv of its own, made once (shared with ingest.sh).
venv=benches/.venv
if ! "$venv/bin/python" -c 'import duckdb' 2> /dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'duckdb==2.0.1'
fi
py="$venv/bin/python"

store=${STORE:-$work/store-built}
if [ ! -d "$store/canonical" ]; then
  [ -z "${STORE:-}" ] || { echo "$STORE: not an ingested store" >&2; exit 2; }
  "$phm" synth --out "$work/landing" --practices "$practices" --patients "$patients" --seed 42
  "$phm" ingest --landing "$work/landing" --store "$store" --memory-limit 8GiB
fi
release="$work/terminology/fixture"
if [ ! -f "$release/release.json" ]; then
  "$phm" terminology import --rf2 terminology/fixture/rf2 --dmd terminology/fixture/dmd \
    --ctv3-map terminology/fixture/ctv3/SRCtv3ToSnomed.txt --out "$release" > /dev/null
fi

cluster=()
"$phm" cluster --help > /dev/null 2>&1 && cluster=(--cluster ${CLUSTER_MEMORY:+--cluster-memory "$CLUSTER_MEMORY"})
command="benches/cohort.sh $scale"
[ -n "${PHM_FEATURES:-}" ] && command="PHM_FEATURES=$PHM_FEATURES $command"
[ -n "${STORE:-}" ] && command="STORE=… $command"
[ -n "${CLUSTER_MEMORY:-}" ] && command="CLUSTER_MEMORY=$CLUSTER_MEMORY $command"
"$py" benches/cohort_bench.py --phm "$phm" --store "$store" --release "$release" --work "$work" \
  --scale "$scale" --repeats "$repeats" --duckdb-python "$py" --command "$command" "${cluster[@]}"
