"""The core work of `phm ingest`, done by DuckDB on the same landing zone.

    python3 benches/duckdb_ingest.py LANDING OUT

`benches/ingest.sh` times this beside `phm ingest`. Per practice (one folder
of LANDING per ODS code, one sub-folder per delivery with its manifest.json),
in DuckDB with two threads:

- Deliveries are ordered by `extracted_at`; the last `full` one and those after
  it are read (a full extract replaces the practice's state).
- EMIS Web: per table and key, the row with the highest `ProcessingId` wins
  (ties: the later delivery, then the later row); a winner with
  `Deleted = true` removes the key. Keys: Admin_Patient on PatientGuid,
  CareRecord_Observation on (PatientGuid, ObservationGuid),
  Prescribing_IssueRecord on (PatientGuid, IssueRecordGuid), the coding tables
  on CodeId. String keys are trimmed; a row with an empty key or a missing or
  negative `ProcessingId` cannot be placed and is left out, as phm leaves it
  out (it quarantines it). Observations join Coding_ClinicalCode (SNOMED CT)
  and issues join Coding_DrugCode (dm+d) on CodeId; both join the current
  patient, which drops the rows of deleted patients (and of patients never
  sent).
- TPP SystmOne: per table and `RowIdentifier` the later row wins (the later
  delivery, then the later row in the file); `RemovedData = 1` removes.
  SRCode takes `SNOMEDCode` when it is a positive number, else the CTV3 code
  through SRCtv3ToSnomed; SRPrimaryCareMedication takes `IDMultiLexDMD` as
  the dm+d code. Both join the current SRPatient row on `IDPatient`.
- patients, events and medications are written as ZSTD (level 1, as phm)
  Parquet under OUT/<table>/practice=<ODS>/data.parquet.

What it does not do, and phm does, is in benches/README.md. It prints, as
JSON on stdout, the rows it wrote per practice and table and the rows the
manifests list (the source rows), and per practice the rows of each source
table's state after the merge, before the joins (`state`); never a row's
values.
"""

import json
import sys
from pathlib import Path

import duckdb

EMIS_KEYS = {
    "Admin_Patient": ["PatientGuid"],
    "CareRecord_Observation": ["PatientGuid", "ObservationGuid"],
    "Prescribing_IssueRecord": ["PatientGuid", "IssueRecordGuid"],
    "Coding_ClinicalCode": ["CodeId"],
    "Coding_DrugCode": ["CodeId"],
}
# Tables whose winner can be a delete marker (the coding tables have none).
EMIS_DELETED = {"Admin_Patient", "CareRecord_Observation", "Prescribing_IssueRecord"}
TPP_TABLES = ["SRPatient", "SRCode", "SRPrimaryCareMedication", "SRCtv3ToSnomed"]
# The supplier table each canonical table is derived from.
SOURCE_OF = {
    "emis": {
        "patients": "Admin_Patient",
        "events": "CareRecord_Observation",
        "medications": "Prescribing_IssueRecord",
    },
    "tpp": {
        "patients": "SRPatient",
        "events": "SRCode",
        "medications": "SRPrimaryCareMedication",
    },
}


def deliveries_all(practice: Path) -> list[tuple[Path, dict]]:
    """Every delivery of the practice with its manifest, oldest first."""
    found = [
        (d, json.loads((d / "manifest.json").read_text()))
        for d in sorted(p for p in practice.iterdir() if p.is_dir())
        if (d / "manifest.json").is_file()
    ]
    return sorted(found, key=lambda dm: dm[1]["extracted_at"])


def deliveries(practice: Path) -> list[tuple[Path, dict]]:
    """The deliveries to apply, oldest first, from the last full extract on."""
    found = deliveries_all(practice)
    fulls = [i for i, (_, m) in enumerate(found) if m["kind"] == "full"]
    return found[fulls[-1] if fulls else 0 :]


def quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def table_rows(con, name: str, files: list[tuple[int, int, Path]]) -> bool:
    """Creates view `all_<name>`: every row of the table's files with its order
    (`_d` delivery, `_f` file in the manifest, `_r` row in the file). False when
    no delivery lists the table."""
    if not files:
        return False
    parts = [
        f"select *, {d} as _d, {f} as _f, file_row_number as _r"
        f" from read_parquet({quote(p)}, file_row_number = true)"
        for d, f, p in files
    ]
    con.execute(f"create or replace temp view all_{name} as " + " union all ".join(parts))
    return True


def current(con, table: str, keys: list[str], order: str, removed: str, usable: str) -> None:
    """Table `cur_<table>`: per key the row that sorts last by `order`, unless
    `removed` holds on it. The winner is found by a hash aggregate over the
    key and the order columns only, then its whole row is read again."""
    con.execute(f"""
      create or replace temp table win as
      select unnest(w) from (
        select max({{{order}, 'removed': {removed}}}) as w
        from all_{table} where {usable} group by {", ".join(keys)})
      where not w.removed""")
    con.execute(f"""
      create or replace temp table cur_{table} as
      select a.* from all_{table} a semi join win w on a._d = w._d and a._f = w._f and a._r = w._r""")


def emis_current(con, table: str) -> None:
    """The winning row per key: highest ProcessingId, then the later delivery,
    file and row; a winner with Deleted = true removes the key."""
    keys = EMIS_KEYS[table]
    trimmed = [f"trim({k})" if k != "CodeId" else k for k in keys]
    usable = " and ".join(
        f"nullif(trim({k}), '') is not null" if k != "CodeId" else f"{k} is not null" for k in keys
    )
    deleted = "coalesce(Deleted, false)" if table in EMIS_DELETED else "false"
    order = "'v': ProcessingId, '_d': _d, '_f': _f, '_r': _r"
    current(con, table, trimmed, order, deleted, f"{usable} and ProcessingId >= 0")


def tpp_current(con, table: str) -> None:
    """The latest row per RowIdentifier (later delivery, file, row); a winner
    with RemovedData = 1 removes the key."""
    order = "'_d': _d, '_f': _f, '_r': _r"
    current(con, table, ["RowIdentifier"], order, "coalesce(RemovedData, 0) = 1", "RowIdentifier is not null")


def copy(con, sql: str, out: Path, table: str, ods: str) -> int:
    folder = out / table / f"practice={ods}"
    folder.mkdir(parents=True, exist_ok=True)
    target = quote(folder / "data.parquet")
    options = "format parquet, compression zstd, compression_level 1"
    return con.execute(f"copy ({sql}) to {target} ({options})").fetchone()[0]


def emis(con, ods: str, have: set[str], out: Path) -> dict[str, int]:
    for table in EMIS_KEYS:
        if table in have:
            emis_current(con, table)
    counts = {}
    patients = "select *, trim(PatientGuid) as pid from cur_Admin_Patient"
    con.execute(f"create or replace temp table pat as {patients}")
    counts["patients"] = copy(
        con,
        f"""select '{ods}' as practice, pid as patient_id, NhsNumber as nhs_number, Sex as sex,
                   DateOfBirth as date_of_birth, DateOfDeath as date_of_death,
                   DateOfRegistration as registered, DateOfDeactivation as deregistered
            from pat""",
        out, "patients", ods,
    )
    if {"CareRecord_Observation", "Coding_ClinicalCode"} <= have:
        counts["events"] = copy(
            con,
            f"""select '{ods}' as practice, p.pid as patient_id, p.NhsNumber as nhs_number,
                       trim(o.ObservationGuid) as source_row_id, o.EffectiveDate as event_date,
                       o.EffectiveDatePrecision as date_precision, o.CodeId as source_code,
                       c.Term as source_term,
                       case when c.SnomedCTConceptId > 0 then c.SnomedCTConceptId end as snomed_concept_id,
                       o.Value as value, o.NumericUnit as unit,
                       o.ParentObservationGuid as parent_event_id
                from cur_CareRecord_Observation o
                join pat p on p.pid = trim(o.PatientGuid)
                join cur_Coding_ClinicalCode c on c.CodeId = o.CodeId""",
            out, "events", ods,
        )
    if {"Prescribing_IssueRecord", "Coding_DrugCode"} <= have:
        counts["medications"] = copy(
            con,
            f"""select '{ods}' as practice, p.pid as patient_id, p.NhsNumber as nhs_number,
                       trim(i.IssueRecordGuid) as source_row_id, i.EffectiveDate as issue_date,
                       i.EffectiveDatePrecision as date_precision, i.CodeId as source_code,
                       c.Term as source_term,
                       case when c.DmdProductCodeId > 0 then c.DmdProductCodeId end as dmd_code,
                       i.Dosage as dosage, i.Quantity as quantity, i.QuantityUnit as quantity_unit,
                       i.CourseDurationInDays as course_days
                from cur_Prescribing_IssueRecord i
                join pat p on p.pid = trim(i.PatientGuid)
                join cur_Coding_DrugCode c on c.CodeId = i.CodeId""",
            out, "medications", ods,
        )
    return counts


def tpp(con, ods: str, have: set[str], out: Path) -> dict[str, int]:
    for table in TPP_TABLES:
        if table in have:
            tpp_current(con, table)
    counts = {}
    counts["patients"] = copy(
        con,
        f"""select '{ods}' as practice, RowIdentifier as patient_id, NHSNumber as nhs_number,
                   Gender as sex, DateBirth as date_of_birth, DateDeath as date_of_death,
                   TestPatient as is_test_patient
            from cur_SRPatient""",
        out, "patients", ods,
    )
    if "SRCode" in have:
        # The CTV3 map as phm reads it: one SNOMED concept per CTV3 code (case kept).
        ctv3 = (
            """select Ctv3Code, max(try_cast(trim(SnomedCode) as bigint)) as concept
               from cur_SRCtv3ToSnomed
               where Ctv3Code is not null and try_cast(trim(SnomedCode) as bigint) > 0 group by 1"""
            if "SRCtv3ToSnomed" in have
            else "select null::varchar as Ctv3Code, null::bigint as concept where false"
        )
        counts["events"] = copy(
            con,
            f"""with map as ({ctv3}),
                code as (select *, case when try_cast(trim(SNOMEDCode) as bigint) > 0
                                        then try_cast(trim(SNOMEDCode) as bigint) end as sct
                         from cur_SRCode)
                select '{ods}' as practice, p.RowIdentifier as patient_id, p.NHSNumber as nhs_number,
                       c.RowIdentifier as source_row_id, c.DateEvent::date as event_date,
                       c.CTV3Code as ctv3_code, c.SNOMEDCode as snomed_code,
                       coalesce(c.sct, m.concept) as snomed_concept_id,
                       case when c.IsNumeric then c.NumericValue end as value,
                       case when c.IsNumeric then c.NumericUnit end as unit,
                       c.NumericComparator as comparator,
                       coalesce(c.IDOrganisationDoneAt, c.IDOrganisation) as recorded_at
                from code c
                join cur_SRPatient p on p.RowIdentifier = c.IDPatient
                left join map m on c.sct is null and m.Ctv3Code = c.CTV3Code""",
            out, "events", ods,
        )
    if "SRPrimaryCareMedication" in have:
        counts["medications"] = copy(
            con,
            f"""select '{ods}' as practice, p.RowIdentifier as patient_id, p.NHSNumber as nhs_number,
                       m.RowIdentifier as source_row_id, m.DateEvent::date as issue_date,
                       case when m.IDMultiLexDMD > 0 then m.IDMultiLexDMD end as dmd_code,
                       m.IDMultiLexProduct as multilex_product, m.NameOfMedication as source_term,
                       m.MedicationDosage as dosage, m.MedicationQuantity as quantity
                from cur_SRPrimaryCareMedication m
                join cur_SRPatient p on p.RowIdentifier = m.IDPatient""",
            out, "medications", ods,
        )
    return counts


def main() -> int:
    landing, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("set threads = 2")
    con.execute("set preserve_insertion_order = false")
    practices = {}
    source_rows = 0
    for practice in sorted(p for p in landing.iterdir() if p.is_dir()):
        chosen = deliveries(practice)
        if not chosen:
            continue
        supplier = chosen[0][1]["supplier"]
        files: dict[str, list[tuple[int, int, Path]]] = {}
        for d, (folder, manifest) in enumerate(chosen):
            for f, entry in enumerate(manifest["files"]):
                files.setdefault(entry["table"], []).append((d, f, folder / entry["path"]))
        # Deliveries before a full extract are read and verified by phm too.
        for _, manifest in deliveries_all(practice):
            source_rows += sum(entry["rows"] for entry in manifest["files"])
        wanted = EMIS_KEYS if supplier == "emis" else TPP_TABLES
        have = {t for t in wanted if table_rows(con, t, files.get(t, []))}
        counts = (emis if supplier == "emis" else tpp)(con, practice.name, have, out)
        counts = {t: counts.get(t, 0) for t in ["patients", "events", "medications"]}
        state = {
            t: con.execute(f"select count(*) from cur_{t}").fetchone()[0] if t in have else 0
            for t in SOURCE_OF[supplier].values()
        }
        practices[practice.name] = {"supplier": supplier, **counts, "state": state}
        # One practice's tables at a time.
        for t in have:
            con.execute(f"drop table if exists cur_{t}")
        con.execute("drop table if exists pat")
        con.execute("drop table if exists win")
    json.dump({"source_rows": source_rows, "practices": practices}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
