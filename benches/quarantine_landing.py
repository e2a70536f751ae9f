"""Adds rows phm quarantines to a synthetic landing zone, so that every term of
`ingest_compare.py reconcile` is exercised (the generator's landing zones
carry no quarantined rows).

    python3 benches/quarantine_landing.py LANDING

Into the last delivery of each practice it appends copies of existing rows,
under new row ids, changed so that phm must quarantine them, and rewrites the
manifest's row counts and SHA-256. It prints, as JSON, the rows it added per
practice, canonical table and quarantine reason; `ingest.sh` checks that
phm's report counts at least these and that the counts still reconcile.

- EMIS CareRecord_Observation: 3 unknown CodeIds, 2 invalid date precisions,
  4 orphans, 1 without a CodeId; plus 1 without an ObservationGuid and 1
  with ProcessingId -1 (quarantined by the merge, in no canonical count).
- EMIS Prescribing_IssueRecord: 2 invalid date precisions, 1 unknown CodeId.
- TPP SRCode: 3 without any code, 2 orphans; plus 1 without RowIdentifier.
- TPP SRPrimaryCareMedication: 2 without any code, 1 orphan.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import duckdb

# A new GUID per added row (its number `n`).
GUID = "format('AAAAAAAA-0000-0000-0000-00000000{{:04d}}', {n})"
NO_PATIENT_GUID = "BBBBBBBB-0000-0000-0000-000000000000"
NO_PATIENT_ID = 777_777_777
UNKNOWN_CODE_ID = 999_999_999

con = duckdb.connect()


def append(path: Path, changes: str, n: int, where: str) -> None:
    """Appends `n` rows of `path` matching `where`, with `changes` (a REPLACE
    list over the row and `i`, its number 0..n-1), and rewrites the file."""
    tmp = path.with_suffix(".tmp")
    con.execute(f"""
      copy (select * from '{path}'
            union all
            select * exclude (i) replace ({changes})
            from (select *, (row_number() over () - 1)::int as i
                  from (select * from '{path}' where {where} limit {n})))
      to '{tmp}' (format parquet)""")
    os.replace(tmp, path)


def emis(folder: Path, practice: Path) -> dict:
    # Rows of patients deleted in any delivery would be removed or orphaned
    # whatever their defect: copy rows of other patients.
    deleted = f"""PatientGuid not in (
        select PatientGuid from read_parquet('{practice}/*/*_Admin_Patient_*.parquet') where Deleted and PatientGuid is not null)"""
    [obs] = folder.glob("*_CareRecord_Observation_*.parquet")
    append(obs, f"""
        case when i = 10 then null else {GUID.format(n="i")} end as ObservationGuid,
        case when i between 5 and 8 then '{NO_PATIENT_GUID}' else PatientGuid end as PatientGuid,
        case when i < 3 then {UNKNOWN_CODE_ID} when i = 9 then null else CodeId end as CodeId,
        case when i in (3, 4) then 'D' else EffectiveDatePrecision end as EffectiveDatePrecision,
        false as Deleted,
        case when i = 11 then -1 else 999999 end as ProcessingId""",
        12, f"not coalesce(Deleted, false) and CodeId is not null and {deleted}")
    added = {"events": {"unknown_code_id": 3, "invalid_date_precision": 2, "orphan_patient": 4,
                        "missing_code": 1}}
    issues = list(folder.glob("*_Prescribing_IssueRecord_*.parquet"))
    if issues:
        append(issues[0], f"""
            {GUID.format(n="100 + i")} as IssueRecordGuid,
            case when i = 2 then {UNKNOWN_CODE_ID} else CodeId end as CodeId,
            case when i < 2 then 'D' else EffectiveDatePrecision end as EffectiveDatePrecision,
            false as Deleted, 999999 as ProcessingId""",
            3, f"not coalesce(Deleted, false) and CodeId is not null and {deleted}")
        added["medications"] = {"invalid_date_precision": 2, "unknown_code_id": 1}
    return added


def tpp(folder: Path, practice: Path) -> dict:
    removed = f"""IDPatient not in (
        select RowIdentifier from read_parquet('{practice}/*/SRPatient.parquet') where RemovedData = 1 and RowIdentifier is not null)"""
    append(folder / "SRCode.parquet", f"""
        case when i = 5 then null else 900000000 + i end as RowIdentifier,
        case when i < 3 then null else CTV3Code end as CTV3Code,
        case when i < 3 then null else SNOMEDCode end as SNOMEDCode,
        case when i in (3, 4) then {NO_PATIENT_ID} else IDPatient end as IDPatient,
        0::tinyint as RemovedData""",
        6, f"IDPatient is not null and coalesce(RemovedData, 0) = 0 and {removed}")
    added = {"events": {"missing_code": 3, "orphan_patient": 2}}
    meds = folder / "SRPrimaryCareMedication.parquet"
    if meds.exists():
        append(meds, f"""
            910000000 + i as RowIdentifier,
            case when i < 2 then null else IDMultiLexDMD end as IDMultiLexDMD,
            case when i < 2 then -1 else IDMultiLexProduct end as IDMultiLexProduct,
            case when i = 2 then {NO_PATIENT_ID} else IDPatient end as IDPatient,
            0::tinyint as RemovedData""",
            3, f"IDPatient is not null and coalesce(RemovedData, 0) = 0 and {removed}")
        added["medications"] = {"missing_code": 2, "orphan_patient": 1}
    return added


def main() -> int:
    landing = Path(sys.argv[1])
    added = {}
    for practice in sorted(p for p in landing.iterdir() if p.is_dir()):
        last = max(
            (d for d in practice.iterdir() if (d / "manifest.json").is_file()),
            key=lambda d: json.loads((d / "manifest.json").read_text())["extracted_at"],
        )
        manifest = json.loads((last / "manifest.json").read_text())
        added[practice.name] = (emis if manifest["supplier"] == "emis" else tpp)(last, practice)
        for f in manifest["files"]:
            path = last / f["path"]
            f["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            f["rows"] = con.execute(f"select count(*) from '{path}'").fetchone()[0]
        (last / "manifest.json").write_text(json.dumps(manifest, indent=2))
    json.dump(added, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
