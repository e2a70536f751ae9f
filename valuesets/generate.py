#!/usr/bin/env python3
"""Writes valuesets/<ID>/<version>.toml for the codelists in fixtures/codelists/,
with a copy of each codelist CSV beside it (a definition may only name files in
its own folder, so the CSV cannot be referred to where it lies).

Run from the repository root: python3 valuesets/generate.py
The pinned versions and source repositories come from
fixtures/codelists/PROVENANCE.md; titles are written here. Existing files are
overwritten: edit this script, not the generated files.
"""

import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODELISTS = os.path.join(ROOT, "fixtures", "codelists")
OUT = os.path.join(ROOT, "valuesets")
PCD = "nhsd-primary-care-domain-refsets-"

TITLES = {
    "AFIB_COD": "Atrial fibrillation codes",
    "AST_COD": "Asthma codes",
    "ASTRES_COD": "Asthma resolved codes",
    "BLDTESTDEC_COD": "Blood test declined codes",
    "CHD_COD": "Coronary heart disease codes",
    "CKD1AND2_COD": "Chronic kidney disease stage 1-2 codes",
    "CKD_COD": "Chronic kidney disease stage 3-5 codes",
    "COPD_COD": "Chronic obstructive pulmonary disease codes",
    "COPDRES_COD": "COPD resolved codes",
    "DEM_COD": "Dementia codes",
    "DEPR_COD": "Depression codes",
    "DEPRES_COD": "Depression resolved codes",
    "DM_COD": "Diabetes mellitus codes",
    "DMINVITE_COD": "Invited for diabetes care codes",
    "DMMAX_COD": "Diabetes maximum tolerated treatment codes",
    "DMPCADEC_COD": "Diabetes personalised care adjustment: care declined codes",
    "DMPCAPU_COD": "Diabetes personalised care adjustment: patient unsuitable codes",
    "DMRES_COD": "Diabetes resolved codes",
    "EPIL_COD": "Epilepsy codes",
    "HF_COD": "Heart failure codes",
    "HYP_COD": "Hypertension codes",
    "HYPRES_COD": "Hypertension resolved codes",
    "IFCCHBAM_COD": "IFCC HbA1c monitoring range codes",
    "LD_COD": "Learning disability codes",
    "MEDRVW_COD": "Medication review codes",
    "MILDFRAIL_COD": "Mild frailty diagnosis codes",
    "MODFRAIL_COD": "Moderate frailty diagnosis codes",
    "PAD_COD": "Peripheral arterial disease codes",
    "PALCARE_COD": "Palliative care codes",
    "SERFRUC_COD": "Serum fructosamine codes",
    "SEVFRAIL_COD": "Severe frailty diagnosis codes",
    "STRK_COD": "Stroke and transient ischaemic attack codes",
}

# OpenCodelists curated lists: file stem -> (id, title).
OTHERS = {
    "opensafely-antibacterials": ("ANTIBACTERIALS", "Antibacterials (dm+d VMPs and AMPs)"),
    "opensafely-asthma-annual-review-qof": ("ASTHMA_ANNUAL_REVIEW", "Asthma annual review (QOF)"),
    "opensafely-cholesterol-tests": ("CHOLESTEROL_TESTS", "Cholesterol tests"),
    "opensafely-direct-acting-oral-anticoagulants-doac": ("DOAC", "Direct-acting oral anticoagulants (dm+d AMPs)"),
    "opensafely-glycated-haemoglobin-hba1c-tests": ("HBA1C_TESTS", "Glycated haemoglobin (HbA1c) tests"),
    "opensafely-sodium-tests-numerical-value": ("SODIUM_TESTS", "Sodium tests (numerical value)"),
    "opensafely-systolic-blood-pressure-qof": ("SYSTOLIC_BP", "Systolic blood pressure (QOF)"),
    "user-RachelS99-doac-estimated-glomerular-filtration-rate": ("DOAC_EGFR", "Estimated glomerular filtration rate (DOAC study)"),
}

# Older versions: (file, id, version, repository it was pinned in).
OLDER = [
    ("nhsd-primary-care-domain-refsets-dm_cod@20200812.csv", "DM_COD", "20200812", "opensafely/qof-diabetes"),
    ("nhsd-primary-care-domain-refsets-dm_cod@20210127.csv", "DM_COD", "20210127", "opensafely/qof"),
    ("nhsd-primary-care-domain-refsets-hyp_cod@20210127.csv", "HYP_COD", "20210127", "opensafely/qof"),
]


def provenance_tables():
    text = open(os.path.join(CODELISTS, "PROVENANCE.md"), encoding="utf-8").read()
    repo_of = {}  # file -> (repo, path)
    pinned = {}  # (repo, list path without version) -> version
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].endswith(".csv"):
            repo_of[parts[0]] = (parts[1], parts[2])
        m = re.match(r"^(opensafely/[\w.-]+): ([\w.-]+/(?:[\w.-]+/)?[\w.-]+)/([\w.-]+)/?$", line)
        if m:
            pinned[(m.group(1), m.group(2))] = m.group(3)
    return repo_of, pinned


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(id_, version, title, status, provenance, csv_source):
    folder = os.path.join(OUT, id_)
    os.makedirs(folder, exist_ok=True)
    csv_rel = os.path.basename(csv_source)
    shutil.copyfile(csv_source, os.path.join(folder, csv_rel))
    body = "\n".join([
        f"id = {toml_string(id_)}",
        f"version = {toml_string(version)}",
        f"title = {toml_string(title)}",
        f"status = {toml_string(status)}",
        'owner = "phm clinical safety"',
        f"provenance = {toml_string(provenance)}",
        f"opencodelists_csv = {toml_string(csv_rel)}",
        "",
    ])
    with open(os.path.join(folder, f"{version}.toml"), "w", encoding="utf-8", newline="\n") as f:
        f.write(body)


def main():
    repo_of, pinned = provenance_tables()
    for name in sorted(os.listdir(CODELISTS)):
        if not name.endswith(".csv"):
            continue
        stem = name[: -len(".csv")]
        repo, path = repo_of[name]
        if stem.startswith(PCD):
            cluster = stem[len(PCD):]
            id_, title, status = cluster.upper(), TITLES[cluster.upper()], "approved"
            listing = f"nhsd-primary-care-domain-refsets/{cluster}"
        else:
            id_, title = OTHERS[stem]
            status = "reviewed"
            owner, _, slug = stem.partition("-")
            if owner == "user":
                user, _, slug = slug.partition("-")
                listing = f"user/{user}/{slug}"
            else:
                listing = f"{owner}/{slug}"
        version = pinned[(repo, listing)]
        provenance = f"OpenCodelists {listing}/{version}, as pinned in {repo} {path}"
        write(id_, version, title, status, provenance, os.path.join(CODELISTS, name))
    for name, id_, version, repo in OLDER:
        cluster = id_.lower()
        provenance = (
            f"OpenCodelists nhsd-primary-care-domain-refsets/{cluster}/{version}, as pinned in "
            f"{repo} codelists/{PCD}{cluster}.csv"
        )
        write(id_, version, TITLES[id_], "approved", provenance,
              os.path.join(CODELISTS, "older-versions", name))


if __name__ == "__main__":
    main()
