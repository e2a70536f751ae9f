//! TPP SystmOne SRK extract tables, columns in v93 order (EXTRACTS.md, "TPP SystmOne
//! SRK extract").
//!
//! Every table is keyed on `RowIdentifier`; a later row wins (later delivery, or
//! later in the same file). `RemovedData=1` rows are sparse deletes. A removed
//! `SRPatient` row deletes all of that patient's data.

use crate::source::table::{DeleteMarker, TableSpec, Ty};
use Ty::*;

pub const SCHEMA_VERSION: &str = "93";

const fn spec(
    name: &'static str,
    columns: &'static [(&'static str, Ty)],
    patient: Option<&'static str>,
) -> TableSpec {
    TableSpec {
        name,
        columns,
        key: &["RowIdentifier"],
        version: None,
        delete: DeleteMarker::TppRemovedData,
        patient,
    }
}

pub const SR_PATIENT: TableSpec = spec(
    "SRPatient",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("Title", Str),
        ("FirstName", Str),
        ("MiddleNames", Str),
        ("Surname", Str),
        ("PreviousSurname", Str),
        ("NHSNumber", Str),
        ("DateBirth", Ts),
        ("DateDeath", Ts),
        ("BirthPlace", Str),
        ("Gender", Str),
        ("SpeaksEnglish", Str),
        ("EmailAddress", Str),
        ("TestPatient", Bool),
        ("SSRef", Str),
        ("SpineMatched", Bool),
        ("RemovedData", I8),
    ],
    Some("RowIdentifier"),
);

pub const SR_PATIENT_REGISTRATION: TableSpec = spec(
    "SRPatientRegistration",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("DateEventRecorded", Ts),
        ("IDProfileEnteredBy", I64),
        ("DateRegistration", Ts),
        ("DateDeRegistration", Ts),
        ("RegistrationStatus", Str),
        ("PreferredPharmacy", Str),
        ("IDPatient", I64),
        ("IDOrganisation", Str),
        ("IDOrganisationRegisteredAt", Str),
        ("RemovedData", I8),
    ],
    Some("IDPatient"),
);

pub const SR_CODE: TableSpec = spec(
    "SRCode",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("DateEventRecorded", Ts),
        ("DateEvent", Ts),
        ("IDProfileEnteredBy", I64),
        ("IDDoneBy", I64),
        ("TextualEventDoneBy", Str),
        ("IDOrganisationDoneAt", Str),
        ("CTV3Code", Str),
        ("CTV3Text", Str),
        ("SNOMEDCode", Str),
        ("SNOMEDText", Str),
        ("NumericComparator", Str),
        ("IsNumeric", Bool),
        ("NumericValue", F64),
        ("NumericUnit", Str),
        ("EpisodeType", Str),
        ("IDTemplate", I64),
        ("IDQuestionnaire", I64),
        ("IDEvent", I64),
        ("IDPatient", I64),
        ("IDReferralIn", I64),
        ("IDAppointment", I64),
        ("IDVisit", I64),
        ("IDOrganisation", Str),
        ("IDOrganisationRegisteredAt", Str),
        ("RemovedData", I8),
    ],
    Some("IDPatient"),
);

pub const SR_PRIMARY_CARE_MEDICATION: TableSpec = spec(
    "SRPrimaryCareMedication",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("DateEventRecorded", Ts),
        ("DateEvent", Ts),
        ("IDProfileEnteredBy", I64),
        ("IDDoneBy", I64),
        ("TextualEventDoneBy", Str),
        ("IDOrganisationDoneAt", Str),
        ("IDMultiLexProduct", I64),
        ("IDMultiLexPack", I64),
        ("IDMultiLexDMD", I64),
        ("NameOfMedication", Str),
        ("DateMedicationStart", Ts),
        ("DateMedicationEnd", Ts),
        ("MedicationDosage", Str),
        ("MedicationQuantity", Str),
        ("IsSupervised", Bool),
        ("SupervisedDose", Str),
        ("UnsupervisedDose", Str),
        ("IsRepeatMedication", Bool),
        ("IsOtherMedication", Bool),
        ("IsDentalMedication", Bool),
        ("IsHospitalMedication", Bool),
        ("IDRepeatTemplate", I64),
        ("IDReferralIn", I64),
        ("IDEvent", I64),
        ("IDPatient", I64),
        ("IDOrganisation", Str),
        ("IDOrganisationRegisteredAt", Str),
        ("RemovedData", I8),
    ],
    Some("IDPatient"),
);

pub const SR_APPOINTMENT: TableSpec = spec(
    "SRAppointment",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("DateStart", Ts),
        ("DateEnd", Ts),
        ("AppointmentStatus", I64),
        ("DateAppointmentBooked", Ts),
        ("DatePatientArrival", Ts),
        ("DatePatientSeen", Ts),
        ("FollowUpAppointment", Bool),
        ("TelephoneAppointment", Bool),
        ("IDClinician", I64),
        ("IDProfileClinician", I64),
        ("RotaName", Str),
        ("RotaType", Str),
        ("RotaLocation", Str),
        ("RotaCode", Str),
        ("IDRotaOwner", I64),
        ("IDProfileRotaOwner", I64),
        ("AllowsOverbooking", Bool),
        ("BookingContactNumber", Str),
        ("DateAppointmentCancelled", Ts),
        ("IDRota", I64),
        ("IDReferralIn", I64),
        ("IDPatient", I64),
        ("IDOrganisation", Str),
        ("IDOrganisationRegisteredAt", Str),
        ("RemovedData", I8),
    ],
    Some("IDPatient"),
);

/// Reference table: CTV3 → SNOMED CT map, used where `SNOMEDCode` is empty or ≤ 0.
pub const SR_CTV3_TO_SNOMED: TableSpec = spec(
    "SRCtv3ToSnomed",
    &[
        ("RowIdentifier", I64),
        ("IDOrganisationVisibleTo", Str),
        ("Ctv3Code", Str),
        ("SnomedCode", Str),
        ("RemovedData", I8),
    ],
    None,
);

/// Reference table: id → text for coded columns such as `AppointmentStatus`.
pub const SR_MAPPING: TableSpec = TableSpec {
    name: "SRMapping",
    columns: &[
        ("RowIdentifier", I64),
        ("IdMappingGroup", I64),
        ("Mapping", Str),
    ],
    key: &["RowIdentifier"],
    version: None,
    delete: DeleteMarker::None,
    patient: None,
};

/// The batch's own manifest: which files are delta or bulk, and the extract window.
pub const SR_MANIFEST: TableSpec = TableSpec {
    name: "SRManifest",
    columns: &[
        ("FileName", Str),
        ("IsDelta", Str),
        ("IsReference", Str),
        ("DateExtractFrom", Ts),
        ("DateExtractTo", Ts),
    ],
    key: &["FileName"],
    version: None,
    delete: DeleteMarker::None,
    patient: None,
};

/// Every TPP table phm knows, in the order ingest applies them (reference tables
/// and patients before clinical rows).
pub const ALL: &[&TableSpec] = &[
    &SR_MANIFEST,
    &SR_MAPPING,
    &SR_CTV3_TO_SNOMED,
    &SR_PATIENT,
    &SR_PATIENT_REGISTRATION,
    &SR_CODE,
    &SR_PRIMARY_CARE_MEDICATION,
    &SR_APPOINTMENT,
];

/// Tables a bulk must carry: patients, and the registration history that
/// says who is registered where (without it nobody would be registered).
pub const BULK_REQUIRED: &[&str] = &["SRPatient", "SRPatientRegistration"];

/// Tables of the extract (EXTRACTS.md) that phm knows and does not read.
pub const KNOWN_UNREAD: &[&str] = &[
    "SRRecordStatus",
    "SREvent",
    "SRProblem",
    "SRRepeatTemplate",
    "SROrganisation",
    "SRCtv3",
    "SRCtv3Hierarchy",
];

pub fn table(name: &str) -> Option<&'static TableSpec> {
    ALL.iter().copied().find(|t| t.name == name)
}
