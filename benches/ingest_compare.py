"""Row counts and timings of `benches/ingest.sh`: DuckDB's against phm's.

    python3 benches/ingest_compare.py reconcile DUCK_JSON PHM_REPORT [ADDED_JSON]
    python3 benches/ingest_compare.py summary RUNS_TSV DUCK_JSON SCALE SYNTH_ARGS

`reconcile` checks, per practice and canonical table, the rows DuckDB wrote
(benches/duckdb_ingest.py's JSON) against phm's `reports/ingest.json`, and
prints each equation with its terms. Two equations per table:

- state: DuckDB's merged source table (before any join) holds phm's
  `source_rows` plus the rows phm removed with their deleted patient during
  the merge (`deleted_with_patient`, deliveries from the last full one on).
  DuckDB keeps those rows in the state and loses them at the patient join.
- written: DuckDB's rows equal phm's `loaded` plus the rows phm quarantines
  for a reason DuckDB does not check: an EMIS date precision that is not
  U/Y/YM/YMD/YMDT (`invalid_date_precision`), and a TPP row without any code
  (`missing_code`: DuckDB loads it with an empty code). The other reasons are
  rows DuckDB's inner joins drop too: `orphan_patient` (no current patient),
  `unknown_code_id` and an EMIS `missing_code` (no coding row for the CodeId).

With ADDED_JSON (benches/quarantine_landing.py's output) it also checks that
phm quarantined at least the rows added, by reason. Exits 1 when an equation
or that check does not hold. `summary` prints the medians as a
Markdown block (the one `ingest.sh` appends to benches/RESULTS.md).
"""

import json
import statistics
import sys

# Quarantine reasons whose rows DuckDB writes (it does not check them).
KEPT = {
    ("emis", "events"): ["invalid_date_precision"],
    ("emis", "medications"): ["invalid_date_precision"],
    ("tpp", "events"): ["missing_code"],
    ("tpp", "medications"): ["missing_code"],
}
# Quarantine reasons whose rows DuckDB's joins drop as well.
DROPPED = ["orphan_patient", "unknown_code_id", "missing_code"]
SOURCE_OF = {
    "emis": {"patients": "Admin_Patient", "events": "CareRecord_Observation",
             "medications": "Prescribing_IssueRecord"},
    "tpp": {"patients": "SRPatient", "events": "SRCode", "medications": "SRPrimaryCareMedication"},
}


def reconcile(duck_json: str, report_json: str, added_json: str | None = None) -> int:
    duck = json.load(open(duck_json))["practices"]
    report = {p["practice"]: p for p in json.load(open(report_json))["practices"]}
    failures = 0
    # Rows benches/quarantine_landing.py added: phm must quarantine at least
    # these, for these reasons, or the equations would not be exercised.
    added = json.load(open(added_json)) if added_json else {}
    for ods, tables in sorted(added.items()):
        reasons = {c["table"]: c["quarantine_reasons"] for c in report[ods]["canonical"]}
        for table, expected in sorted(tables.items()):
            for reason, n in sorted(expected.items()):
                got = reasons[table].get(reason, 0)
                ok = got >= n
                failures += not ok
                print(f"{ods} {table} {reason}: {n} added, phm quarantined {got}" + ("" if ok else "  TOO FEW"))
    for ods in sorted(set(duck) | set(report)):
        if ods not in duck or ods not in report:
            print(f"{ods}: only in {'DuckDB' if ods in duck else 'phm'}'s counts  DIFFERS")
            failures += 1
            continue
        d, p = duck[ods], report[ods]
        supplier = p["supplier"]
        deliveries = p["deliveries"]
        fulls = [i for i, x in enumerate(deliveries) if x["kind"] == "full"]
        since_full = deliveries[fulls[-1] if fulls else 0 :]
        for c in p["canonical"]:
            table = c["table"]
            if table not in SOURCE_OF[supplier]:
                continue  # registrations: DuckDB does not derive them
            source = SOURCE_OF[supplier][table]
            with_patient = sum(x["deleted_with_patient"].get(source, 0) for x in since_full)
            reasons = c["quarantine_reasons"]
            kept = KEPT.get((supplier, table), [])
            written = c["loaded"] + sum(reasons.get(r, 0) for r in kept)
            state = c["source_rows"] + with_patient
            ok = d[table] == written and d["state"][source] == state
            failures += not ok
            terms = "".join(f" + {r} {reasons.get(r, 0)}" for r in kept)
            dropped = ", ".join(f"{r} {reasons.get(r, 0)}" for r in DROPPED if r not in kept)
            print(
                f"{ods} {supplier} {table:<11} written: DuckDB {d[table]} = phm loaded {c['loaded']}{terms}; "
                f"state: DuckDB {d['state'][source]} = phm source rows {c['source_rows']} "
                f"+ deleted with patient {with_patient}"
                + (f"; dropped by both: {dropped}" if table != "patients" else "")
                + ("  ok" if ok else "  DIFFERS")
            )
    print("row counts reconcile" if not failures else f"{failures} counts do not reconcile")
    return 1 if failures else 0


def summary(runs_tsv: str, duck_json: str, scale: str, synth_args: str) -> int:
    runs: dict[str, list[tuple[float, int]]] = {}
    for line in open(runs_tsv):
        label, wall, rss = line.split("\t")
        runs.setdefault(label.split(".")[0], []).append((float(wall), int(rss)))
    duck = json.load(open(duck_json))
    source_rows = duck["source_rows"]
    loaded = {t: sum(p[t] for p in duck["practices"].values()) for t in ["patients", "events", "medications"]}
    med = {tool: (statistics.median(w for w, _ in r), statistics.median(m for _, m in r)) for tool, r in runs.items()}
    out = [
        f"### {scale} (`phm synth {synth_args} --seed 42`, two deltas)",
        "",
        f"{len(duck['practices'])} practice{'s' if len(duck['practices']) != 1 else ''}; "
        f"{source_rows:,} source rows in the manifests; "
        f"DuckDB wrote {loaded['patients']:,} patients, {loaded['events']:,} events, "
        f"{loaded['medications']:,} medications (reconciled with phm's report).",
        "",
        "| tool | wall, median (runs) | peak RSS, median | source rows/s |",
        "|---|---|---|---|",
    ]
    names = {"phm": "`phm ingest`", "duckdb": "DuckDB equal work", "delta": "`phm ingest`, last delta alone"}
    for tool in ["phm", "duckdb", "delta"]:
        if tool not in runs:
            continue
        wall, rss = med[tool]
        each = " / ".join(f"{w:.1f}" for w, _ in runs[tool])
        rate = f"{source_rows / wall:,.0f}" if tool != "delta" else "–"
        out.append(f"| {names[tool]} | {wall:.1f} s ({each}) | {rss / 1048576:.2f} GB | {rate} |")
    if "phm" in med and "duckdb" in med:
        out += ["", f"phm / DuckDB: {med['phm'][0] / med['duckdb'][0]:.2f}× wall, "
                    f"{med['phm'][1] / med['duckdb'][1]:.2f}× peak RSS."]
    if "delta" in med and "phm" in med:
        out.append(f"The last delta alone takes {med['delta'][0] / med['phm'][0]:.0%} of the bulk ingest's wall time.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.exit({"reconcile": reconcile, "summary": summary}[command](*args))
