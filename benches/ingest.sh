#!/usr/bin/env bash
# Ingest benchmark: `phm ingest` beside DuckDB doing the equal core work
# (benches/duckdb_ingest.py) on the same synthetic landing zone, with wall time
# and peak RSS (/usr/bin/time -v) per run, medians over alternating runs, a
# row-count reconciliation against phm's report, and a dated block appended to
# benches/RESULTS.md. See benches/README.md.
#
#   benches/ingest.sh [SCALE...]      default: demo practice20k pcn50k practice60k
#
# Scales (phm synth, seed 42, two deltas):
#   demo         6 practices, 20,000 patients, the last without prescribing (as `phm demo`)
#   practice20k  1 EMIS practice, 20,000 patients; also the `delta` measurement
#   pcn50k       6 practices, 50,000 patients
#   practice60k  1 EMIS practice, 60,000 patients
#
# Environment:
#   PHM        the phm binary (default target/release/phm); not built here
#   BENCH_DIR  where each scale's landing zone, stores and logs go
#              (default benches/data/ingest; one folder per scale; the
#              landing zone is synthesised once and reused)
#   REPEATS    runs per tool (default 3)
#
# phm ingest gets `--memory-limit 2GiB` when its --help lists the option.
# The script fails when a run fails or DuckDB's row counts do not reconcile
# with phm's report. It first checks the reconciliation itself on a small
# landing zone with rows phm must quarantine added (BENCH_DIR/selfcheck).
set -euo pipefail
cd "$(dirname "$0")/.."
phm=${PHM:-target/release/phm}
base=${BENCH_DIR:-benches/data/ingest}
repeats=${REPEATS:-3}
scales=("$@")
[ ${#scales[@]} -gt 0 ] || scales=(demo practice20k pcn50k practice60k)
[ -x "$phm" ] || { echo "no phm binary at $phm; hint: build it (cargo build --release) or set PHM" >&2; exit 2; }

# DuckDB from PyPI in a venv of its own, made once.
venv=benches/.venv
if ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'duckdb==2.0.1'
fi
py="$venv/bin/python"

limit=()
if "$phm" ingest --help | grep -q -- '--memory-limit'; then limit=(--memory-limit 2GiB); fi

synth_args() { # scale → phm synth arguments
  case $1 in
    demo) echo "--practices 6 --patients 20000 --without-prescribing 1" ;;
    practice20k) echo "--practices 1 --patients 20000 --emis-share 1" ;;
    pcn50k) echo "--practices 6 --patients 50000" ;;
    practice60k) echo "--practices 1 --patients 60000 --emis-share 1" ;;
    *) echo "unknown scale $1; hint: one of demo practice20k pcn50k practice60k" >&2; return 2 ;;
  esac
}
for scale in "${scales[@]}"; do synth_args "$scale" > /dev/null; done

# Runs a command under /usr/bin/time -v; appends "label wall_s peak_kib" to runs.tsv.
timed() { # dir, label, command...
  local dir=$1 label=$2; shift 2
  if ! /usr/bin/time -v "$@" > "$dir/$label.out" 2> "$dir/$label.time"; then
    echo "$label failed:" >&2; tail -n 30 "$dir/$label.time" >&2; exit 1
  fi
  "$py" - "$dir/$label.time" "$label" >> "$dir/runs.tsv" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
print(f"{sys.argv[2]}\t{seconds:.2f}\t{rss}")
PY
  tail -n 1 "$dir/runs.tsv" | awk -F'\t' '{printf "  %-14s %8.2f s  %6.2f GB peak RSS\n", $1, $2, $3 / 1048576}'
}

# The reconciliation's own check, first: a small landing zone with rows phm
# must quarantine added (benches/quarantine_landing.py), whose counts must
# reconcile term by term.
check="$base/selfcheck"
rm -rf "$check" && mkdir -p "$check"
"$phm" synth --out "$check/landing" --practices 2 --patients 300 --seed 7 > /dev/null
"$py" benches/quarantine_landing.py "$check/landing" > "$check/added.json"
"$phm" ingest --landing "$check/landing" --store "$check/store" "${limit[@]}" > /dev/null
"$py" benches/duckdb_ingest.py "$check/landing" "$check/duck" > "$check/duck.json"
if ! "$py" benches/ingest_compare.py reconcile "$check/duck.json" "$check/store/reports/ingest.json" \
    "$check/added.json" > "$check/reconcile.txt"; then
  cat "$check/reconcile.txt"; exit 1
fi
echo "self-check: the counts reconcile on a landing zone with quarantined rows added ($check/reconcile.txt)"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
summaries=()
for scale in "${scales[@]}"; do
  args=$(synth_args "$scale")
  dir="$base/$scale"
  mkdir -p "$dir"
  if [ ! -f "$dir/landing/ground_truth.json" ]; then
    rm -rf "$dir/landing"
    echo "$scale: phm synth --out $dir/landing $args --seed 42"
    # shellcheck disable=SC2086
    "$phm" synth --out "$dir/landing" $args --seed 42 > "$dir/synth.out"
  fi
  echo "$scale: $(du -sh "$dir/landing" | cut -f1) landing, phm $phm ${limit[*]:-(no --memory-limit)}, DuckDB $("$py" -c 'import duckdb; print(duckdb.__version__)'), $machine"
  : > "$dir/runs.tsv"
  for i in $(seq "$repeats"); do
    # Alternate which tool goes first, so neither always runs on a warmer cache.
    order=(phm duckdb); [ $((i % 2)) -eq 0 ] && order=(duckdb phm)
    for tool in "${order[@]}"; do
      if [ "$tool" = phm ]; then
        rm -rf "$dir/store"
        timed "$dir" "phm.$i" "$phm" ingest --landing "$dir/landing" --store "$dir/store" "${limit[@]}"
        cp "$dir/store/reports/ingest.json" "$dir/phm.$i.report.json"
      else
        rm -rf "$dir/duck"
        timed "$dir" "duckdb.$i" "$py" benches/duckdb_ingest.py "$dir/landing" "$dir/duck"
      fi
    done
    # The counts of every run, against phm's report of the same repetition.
    if ! "$py" benches/ingest_compare.py reconcile "$dir/duckdb.$i.out" "$dir/phm.$i.report.json" > "$dir/reconcile.$i.txt"; then
      cat "$dir/reconcile.$i.txt"; exit 1
    fi
  done
  sed 's/^/  /' "$dir/reconcile.1.txt"

  if [ "$scale" = practice20k ]; then
    # The last delta alone, into a store that holds the earlier deliveries.
    last=$(find "$dir/landing" -mindepth 2 -maxdepth 2 -type d | sort | tail -n 1)
    rm -rf "$dir/landing-before-last" "$dir/store-before-last"
    mkdir -p "$dir/landing-before-last"
    cp -al "$dir/landing/." "$dir/landing-before-last/"
    rm -rf "$dir/landing-before-last/${last#"$dir/landing/"}"
    echo "  delta: $(basename "$last") alone, onto a store of the earlier deliveries"
    "$phm" ingest --landing "$dir/landing-before-last" --store "$dir/store-before-last" "${limit[@]}" > /dev/null
    for i in $(seq "$repeats"); do
      rm -rf "$dir/store-delta"
      cp -a "$dir/store-before-last" "$dir/store-delta"
      timed "$dir" "delta.$i" "$phm" ingest --landing "$dir/landing" --store "$dir/store-delta" "${limit[@]}"
    done
    # The store grown by the delta holds what the bulk ingest of the whole landing holds.
    "$py" - "$dir/store-delta/reports/ingest.json" "$dir/phm.1.report.json" <<'PY'
import json, sys
loaded = lambda f: {(p["practice"], c["table"]): c["loaded"]
                    for p in json.load(open(f))["practices"] for c in p["canonical"]}
assert loaded(sys.argv[1]) == loaded(sys.argv[2]), "the store grown by the last delta differs from the bulk ingest"
print("  delta: the grown store's loaded counts equal the bulk ingest's")
PY
  fi

  summaries+=("$("$py" benches/ingest_compare.py summary "$dir/runs.tsv" "$dir/duckdb.1.out" "$scale" "$args")")
  echo "${summaries[-1]}"
done

{
  echo
  echo "## ingest beside DuckDB, \`benches/ingest.sh ${scales[*]}\` ($(date -u +%Y-%m-%d))"
  echo
  echo "Commit $commit; phm \`$phm\`${limit[*]:+ with ${limit[*]}}; DuckDB $("$py" -c 'import duckdb; print(duckdb.__version__)') (\`benches/duckdb_ingest.py\`, 2 threads); $machine; $repeats alternating run(s) per tool, medians; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  for s in "${summaries[@]}"; do echo; echo "$s"; done
} >> benches/RESULTS.md
echo "appended to benches/RESULTS.md"
