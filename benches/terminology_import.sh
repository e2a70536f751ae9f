#!/usr/bin/env bash
# Terminology import at full size: a generated RF2 snapshot the size of the UK
# Clinical Edition plus International (350k concepts, 1.2M IS-A rows, 1.05M
# descriptions and language refset rows), imported by the release build, with
# wall time and peak memory.
#
#   benches/terminology_import.sh [CONCEPTS] [ISA_ROWS] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
concepts=${1:-350000}
isa=${2:-1200000}
work=${3:-/tmp/phm-rf2-bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/phm-target}"
cargo build --release --quiet
rm -rf "$work" && mkdir -p "$work"
python3 benches/gen_rf2.py "$work/rf2" "$concepts" "$isa"
echo "input: $(du -sh "$work/rf2" | cut -f1)"
/usr/bin/time -f "import: %e s wall, %M KiB peak RSS" \
  "$CARGO_TARGET_DIR/release/phm" terminology import --rf2 "$work/rf2" --out "$work/bench-20260506"
echo "output: $(du -sh "$work/bench-20260506" | cut -f1)"
