//! `phm reidentify`: a practice gets back its own registered patients from
//! pseudonyms, and nothing else; every call is audited without identifiers.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use chrono::NaiveDate;
use common::*;
use datafusion::arrow::array::{Array, Date32Array, StringArray};
use phm::output::pseudonym::Key;

const KEY: &[u8] = b"forty bytes of key material for the test";

fn strings<'a>(b: &'a datafusion::arrow::array::RecordBatch, c: &str) -> &'a StringArray {
    b.column_by_name(c)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
}

#[test]
fn a_practice_gets_back_its_own_registered_patients_only() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    let truth = network(&landing, 41, 300);
    let (emis, tpp) = one_of_each(&truth);
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let key_file = work.path().join("network.key");
    fs::write(&key_file, [KEY, b"\n"].concat()).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let key = Key::new(KEY, "test").unwrap();

    // A verified patient of the EMIS practice whose registration is open, and
    // one whose registration ended before the extract (EMIS holds one
    // registration per patient, on Admin_Patient).
    let part = |t: &str| {
        store
            .join("canonical")
            .join(t)
            .join(format!("practice={emis}/data.parquet"))
    };
    let patients = read_batch(&part("patients"));
    let regs = read_batch(&part("registrations"));
    // The network's as-of date; registrations that ended 40 days before it
    // ended before the last extract too.
    let latest = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let ends = regs
        .column_by_name("end_date")
        .unwrap()
        .as_any()
        .downcast_ref::<Date32Array>()
        .unwrap();
    let reg_ids = strings(&regs, "patient_id");
    let ended: Vec<&str> = (0..regs.num_rows())
        .filter(|i| {
            ends.is_valid(*i) && ends.value_as_date(*i).unwrap() < latest - chrono::Days::new(40)
        })
        .map(|i| reg_ids.value(i))
        .collect();
    let open: Vec<&str> = (0..regs.num_rows())
        .filter(|i| ends.is_null(*i))
        .map(|i| reg_ids.value(i))
        .collect();
    let (ids, numbers, status) = (
        strings(&patients, "patient_id"),
        strings(&patients, "nhs_number"),
        strings(&patients, "nhs_number_status"),
    );
    let pick = |among: &[&str]| {
        (0..patients.num_rows())
            .find(|i| status.value(*i) == "verified" && among.contains(&ids.value(*i)))
            .map(|i| numbers.value(i).to_string())
            .expect("a verified patient")
    };
    let registered_nhs = pick(&open);
    let ended_nhs = pick(&ended);
    let unverified = (0..patients.num_rows())
        .find(|i| status.value(*i) != "verified" && open.contains(&ids.value(*i)))
        .map(|i| ids.value(i).to_string())
        .expect("an unverified registered patient");
    let (p_registered, p_ended, p_local) = (
        key.linkable(&registered_nhs),
        key.linkable(&ended_nhs),
        key.unlinkable(&emis, &unverified),
    );

    let run = |practice: &str, pseudonyms: &[&str]| {
        let mut args = vec![
            "reidentify",
            "--store",
            store.to_str().unwrap(),
            "--practice",
            practice,
            "--purpose",
            "diabetes recall",
            "--key-file",
            key_file.to_str().unwrap(),
        ];
        args.extend_from_slice(pseudonyms);
        phm(&args)
    };

    let o = run(&emis, &[&p_registered, &p_local]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("{p_registered}\t{registered_nhs}\t")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{p_local}\t\t{unverified}\tregistered at {emis}")),
        "{text}"
    );

    // Not registered any more: refused.
    let o = run(&emis, &[&p_ended]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("refused: not registered"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains(&ended_nhs));

    // Another practice asking for this practice's patient: refused.
    let o = run(&tpp, &[&p_registered]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stdout(&o).contains(&registered_nhs), "{}", stdout(&o));

    // Another key gives nothing.
    let other_key = work.path().join("other.key");
    fs::write(&other_key, b"another forty bytes of key material here").unwrap();
    let o = phm(&[
        "reidentify",
        "--store",
        store.to_str().unwrap(),
        "--practice",
        &emis,
        "--purpose",
        "x",
        "--key-file",
        other_key.to_str().unwrap(),
        &p_registered,
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("readable by other users"),
        "{}",
        stderr(&o)
    );

    // Every call audited, with the key id and purpose, never an identifier.
    let audit = phm::output::audit::read(&store).unwrap();
    let outcomes: Vec<&str> = audit.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["done", "refused", "refused", "refused"]);
    assert_eq!(
        audit[0].key_id.as_deref(),
        Some(key.id().to_string().as_str())
    );
    assert_eq!(audit[0].purpose.as_deref(), Some("diabetes recall"));
    assert_eq!(audit[2].practice.as_deref(), Some(tpp.as_str()));
    let log = fs::read_to_string(phm::output::audit::path(&store)).unwrap();
    for id in [&registered_nhs, &ended_nhs, &unverified] {
        assert!(!log.contains(id.as_str()), "identifier in the audit log");
    }
    assert!(!log.contains("forty bytes"), "key in the audit log");
}
