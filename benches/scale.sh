#!/usr/bin/env bash
# One network end to end under a memory limit, stage by stage: synth, ingest,
# every shipped cohort in one run, and the data-quality assessment. Each
# stage is timed under /usr/bin/time (wall, peak RSS); a poller samples the
# stage's spill folder every second for the peak bytes spilled. The figures
# are printed as a Markdown block and appended to benches/RESULTS.md.
#
#   benches/scale.sh SCALE [WORKDIR]
#
#   SCALE: large (100,000 patients, 12 practices) or icb (900,000
#   patients, 120 practices: the most `phm synth` numbers, as the 999 test
#   range of NHS numbers holds 909,091 valid ones); PATIENTS and PRACTICES
#   override.
#
# Environment: PHM (binary; default: release build of this checkout),
# LIMIT (memory limit for every stage; default 8GiB), BATCH (practices
# ingested per `phm ingest` run; default 30: at icb scale the landing zone
# and the store do not fit on disk together, so each batch's landing folders
# are deleted once ingested unless KEEP_LANDING=1).
#
# Stages already done in WORKDIR (landing zone, ingested store) are reused:
# their rows keep the figures and the binary of the run that timed them.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:?usage: benches/scale.sh large|icb [WORKDIR]}
case "$scale" in
  large) patients=${PATIENTS:-100000}; practices=${PRACTICES:-12} ;;
  icb) patients=${PATIENTS:-900000}; practices=${PRACTICES:-120} ;;
  *) echo "unknown scale $scale; hint: large or icb" >&2; exit 2 ;;
esac
work=${2:-/tmp/phm-scale-$scale}
limit=${LIMIT:-8GiB}
batch=${BATCH:-30}
index=2026-03-31
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/phm-target}"
if [ -z "${PHM:-}" ]; then
  cargo build --release --quiet
  PHM="$CARGO_TARGET_DIR/release/phm"
  binary=$(git rev-parse --short HEAD 2> /dev/null || echo '?')
else
  binary=$(basename "$PHM")
fi
mkdir -p "$work"
python3 -c 'import duckdb' 2> /dev/null || pip install --quiet duckdb
mkdir -p "$work/stages"

# stage NAME SPILL_DIR command...: runs the command under /usr/bin/time with
# a poller on SPILL_DIR; writes "name wall_s peak_rss_kib spill_peak_bytes
# binary" to stages/NAME (names sort in stage order; a rerun replaces its stage's).
stage() {
  local name=$1 spill=$2; shift 2
  mkdir -p "$spill"
  local peak_file="$work/.spill-peak"
  echo 0 > "$peak_file"
  ( peak=0
    while true; do
      s=$(du -sb "$spill" 2> /dev/null | cut -f1 || echo 0)
      [ "${s:-0}" -gt "$peak" ] && { peak=$s; echo "$peak" > "$peak_file"; }
      sleep 1
    done ) &
  local poller=$!
  local rc=0
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
  kill "$poller" 2> /dev/null; wait "$poller" 2> /dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "stage $name failed (exit $rc):" >&2
    tail -n 20 "$work/$name.err" >&2
    exit "$rc"
  fi
  read -r wall rss < <(tail -n 1 "$work/$name.time")
  printf '%s\t%s\t%s\t%s\t%s\n' "${name#*-}" "$wall" "$rss" "$(cat "$peak_file")" "$binary" > "$work/stages/$name"
  echo "  $name: $wall s, peak RSS $((rss / 1024)) MiB, spill peak $(( $(cat "$peak_file") / 1048576 )) MiB"
}

echo "phm $binary, $scale: $patients patients, $practices practices, limit $limit"

if [ ! -f "$work/landing-all/.complete" ]; then
  rm -rf "$work/landing-all"
  stage 1-synth "$work/spill-synth" "$PHM" synth --out "$work/landing-all" \
    --practices "$practices" --patients "$patients" --seed 42
  touch "$work/landing-all/.complete"
fi

if [ ! -f "$work/store/.complete" ]; then
  rm -rf "$work/store" "$work/landing" "$work"/stages/2-*
  mapfile -t dirs < <(find "$work/landing-all" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
  n=0
  for ((i = 0; i < ${#dirs[@]}; i += batch)); do
    n=$((n + 1))
    mkdir -p "$work/landing"
    for d in "${dirs[@]:i:batch}"; do
      if [ "${KEEP_LANDING:-0}" = 1 ]; then cp -r "$work/landing-all/$d" "$work/landing/"; else mv "$work/landing-all/$d" "$work/landing/"; fi
    done
    stage "2-ingest-$(printf %03d "$n")" "$work/spill-ingest" "$PHM" ingest --landing "$work/landing" --store "$work/store" \
      --memory-limit "$limit" --spill-dir "$work/spill-ingest"
    cp "$work/store/reports/ingest.json" "$work/ingest-$n.json"
    rm -rf "$work/landing"
  done
  touch "$work/store/.complete"
fi

release="$work/terminology/fixture"
if [ ! -f "$release/release.json" ]; then
  "$PHM" terminology import --rf2 terminology/fixture/rf2 --dmd terminology/fixture/dmd \
    --ctv3-map terminology/fixture/ctv3/SRCtv3ToSnomed.txt --out "$release" > /dev/null
fi

rm -rf "$work/out-all" "$work/dq"
TMPDIR="$work/spill-cohorts" stage 3-cohorts "$work/spill-cohorts" "$PHM" cohort run --all \
  --store "$work/store" --release "$release" --index-date "$index" --out "$work/out-all" \
  --memory-limit "$limit"
TMPDIR="$work/spill-dq" stage 4-dq "$work/spill-dq" "$PHM" dq --store "$work/store" --release "$release" \
  --as-of "$index" --out "$work/dq" --memory-limit "$limit"

# Rows in the store, counted from the Parquet footers.
counts=$(python3 - "$work/store/canonical" <<'PY'
import duckdb, sys
print(" ".join(str(duckdb.sql(f"select count(*) from read_parquet('{sys.argv[1]}/{t}/*/*.parquet')").fetchall()[0][0])
               for t in ["patients", "events", "medications"]))
PY
)
read -r n_patients n_events n_meds <<< "$counts"

block=$(python3 - "$work/stages" "$scale" "$patients" "$practices" "$limit" "$n_patients" "$n_events" "$n_meds" "$(git rev-parse --short HEAD 2> /dev/null || echo '?')" <<'PY'
import sys, datetime, os, platform
log, scale, patients, practices, limit, n_pat, n_ev, n_med, rev = sys.argv[1:]
n_pat, n_ev, n_med = int(n_pat), int(n_ev), int(n_med)
rows = [open(os.path.join(log, f)).read().rstrip("\n").split("\t") for f in sorted(os.listdir(log))]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1048576
print(f"### {scale}: {int(patients):,} patients, {practices} practices, limit {limit} ({datetime.date.today()}, {rev})\n")
print(f"Command: `benches/scale.sh {scale}`. Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB. "
      f"Store: {n_pat:,} patients, {n_ev:,} events, {n_med:,} medication issues.\n")
print("| stage | wall | peak RSS | spill peak | events/s | binary |")
print("|---|---|---|---|---|---|")
rows = [r + ["an earlier run"] * (5 - len(r)) for r in rows]
ingest = [r for r in rows if r[0].startswith("ingest")]
for name, wall, rss, spill, binary in rows:
    per = f"{n_ev / float(wall):,.0f}" if name in ("cohorts", "dq") or name.startswith("ingest") and len(ingest) == 1 else ""
    print(f"| {name} | {float(wall):.1f} s | {int(rss) / 1048576:.2f} GiB | {int(spill) / 1048576:,.0f} MiB | {per} | {binary} |")
if len(ingest) > 1:
    wall = sum(float(r[1]) for r in ingest)
    rss = max(int(r[2]) for r in ingest)
    spill = max(int(r[3]) for r in ingest)
    binaries = ", ".join(sorted({r[4] for r in ingest}))
    print(f"| ingest, {len(ingest)} runs in all | {wall:.1f} s | {rss / 1048576:.2f} GiB | {spill / 1048576:,.0f} MiB | {n_ev / wall:,.0f} | {binaries} |")
PY
)
echo
echo "$block"
printf '\n%s\n' "$block" >> benches/RESULTS.md
