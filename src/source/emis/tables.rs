//! EMIS Web extract tables, columns in extract order (EXTRACTS.md, "EMIS Web extract").
//!
//! Schema version 5.4. Keys: clinical tables on (PatientGuid, RecordGuid), admin
//! tables on their GUID, coding tables on CodeId; the highest `ProcessingId` wins
//! per key and `Deleted=true` removes.

use crate::source::table::{DeleteMarker, TableSpec, Ty};
use Ty::*;

pub const SCHEMA_VERSION: &str = "5.4";

pub const ADMIN_PATIENT: TableSpec = TableSpec {
    name: "Admin_Patient",
    columns: &[
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("UsualGpUserInRoleGuid", Str),
        ("Sex", Str),
        ("DateOfBirth", Date),
        ("DateOfDeath", Date),
        ("Title", Str),
        ("GivenName", Str),
        ("MiddleNames", Str),
        ("Surname", Str),
        ("DateOfRegistration", Date),
        ("NhsNumber", Str),
        ("PatientNumber", Str),
        ("PatientTypeDescription", Str),
        ("DummyType", Str),
        ("HouseNameFlatNumber", Str),
        ("NumberAndStreet", Str),
        ("Village", Str),
        ("Town", Str),
        ("County", Str),
        ("Postcode", Str),
        ("ResidentialInstituteCode", Str),
        ("NHSNumberStatus", Str),
        ("CarerName", Str),
        ("CarerRelation", Str),
        ("PersonGuid", Str),
        ("DateOfDeactivation", Date),
        ("Deleted", Bool),
        ("SpineSensitive", Bool),
        ("IsConfidential", Bool),
        ("EmailAddress", Str),
        ("HomePhone", Str),
        ("MobilePhone", Str),
        ("ExternalUsualGPGuid", Str),
        ("ExternalUsualGP", Str),
        ("ExternalUsualGPOrganisation", Str),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const ADMIN_ORGANISATION: TableSpec = TableSpec {
    name: "Admin_Organisation",
    columns: &[
        ("OrganisationGuid", Str),
        ("CDB", Str),
        ("OrganisationName", Str),
        ("ODSCode", Str),
        ("ParentOrganisationGuid", Str),
        ("CCGOrganisationGuid", Str),
        ("OrganisationType", Str),
        ("OpenDate", Date),
        ("CloseDate", Date),
        ("MainLocationGuid", Str),
        ("ProcessingId", I64),
    ],
    key: &["OrganisationGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::None,
    patient: None,
};

pub const ADMIN_USER_IN_ROLE: TableSpec = TableSpec {
    name: "Admin_UserInRole",
    columns: &[
        ("UserInRoleGuid", Str),
        ("OrganisationGuid", Str),
        ("Title", Str),
        ("GivenName", Str),
        ("Surname", Str),
        ("JobCategoryCode", Str),
        ("JobCategoryName", Str),
        ("ContractStartDate", Date),
        ("ContractEndDate", Date),
        ("ProcessingId", I64),
    ],
    key: &["UserInRoleGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::None,
    patient: None,
};

pub const CARE_RECORD_CONSULTATION: TableSpec = TableSpec {
    name: "CareRecord_Consultation",
    columns: &[
        ("ConsultationGuid", Str),
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("EffectiveDate", Date),
        ("EffectiveDatePrecision", Str),
        ("EnteredDate", Date),
        ("EnteredTime", Str),
        ("ClinicianUserInRoleGuid", Str),
        ("EnteredByUserInRoleGuid", Str),
        ("AppointmentSlotGuid", Str),
        ("ConsultationSourceTerm", Str),
        ("ConsultationSourceCodeId", I64),
        ("Complete", Bool),
        ("Deleted", Bool),
        ("IsConfidential", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "ConsultationGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const CARE_RECORD_OBSERVATION: TableSpec = TableSpec {
    name: "CareRecord_Observation",
    columns: &[
        ("ObservationGuid", Str),
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("EffectiveDate", Date),
        ("EffectiveDatePrecision", Str),
        ("EnteredDate", Date),
        ("EnteredTime", Str),
        ("ClinicianUserInRoleGuid", Str),
        ("EnteredByUserInRoleGuid", Str),
        ("ParentObservationGuid", Str),
        ("CodeId", I64),
        ("ProblemGuid", Str),
        ("AssociatedText", Str),
        ("ConsultationGuid", Str),
        ("Value", F64),
        ("NumericUnit", Str),
        ("ObservationType", Str),
        ("NumericRangeLow", F64),
        ("NumericRangeHigh", F64),
        ("DocumentGuid", Str),
        ("Deleted", Bool),
        ("IsConfidential", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "ObservationGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const CARE_RECORD_PROBLEM: TableSpec = TableSpec {
    name: "CareRecord_Problem",
    columns: &[
        ("ObservationGuid", Str),
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("ParentProblemObservationGuid", Str),
        ("Deleted", Bool),
        ("Comment", Str),
        ("EndDate", Date),
        ("EndDatePrecision", Str),
        ("ExpectedDuration", I64),
        ("LastReviewDate", Date),
        ("LastReviewDatePrecision", Str),
        ("LastReviewUserInRoleGuid", Str),
        ("ParentProblemRelationship", Str),
        ("ProblemStatusDescription", Str),
        ("SignificanceDescription", Str),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "ObservationGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const PRESCRIBING_DRUG_RECORD: TableSpec = TableSpec {
    name: "Prescribing_DrugRecord",
    columns: &[
        ("DrugRecordGuid", Str),
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("EffectiveDate", Date),
        ("EffectiveDatePrecision", Str),
        ("EnteredDate", Date),
        ("EnteredTime", Str),
        ("ClinicianUserInRoleGuid", Str),
        ("EnteredByUserInRoleGuid", Str),
        ("CodeId", I64),
        ("Dosage", Str),
        ("Quantity", F64),
        ("QuantityUnit", Str),
        ("ProblemObservationGuid", Str),
        ("PrescriptionType", Str),
        ("IsActive", Bool),
        ("CancellationDate", Date),
        ("NumberOfIssues", I64),
        ("NumberOfIssuesAuthorised", I64),
        ("IsConfidential", Bool),
        ("Deleted", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "DrugRecordGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const PRESCRIBING_ISSUE_RECORD: TableSpec = TableSpec {
    name: "Prescribing_IssueRecord",
    columns: &[
        ("IssueRecordGuid", Str),
        ("PatientGuid", Str),
        ("OrganisationGuid", Str),
        ("DrugRecordGuid", Str),
        ("EffectiveDate", Date),
        ("EffectiveDatePrecision", Str),
        ("EnteredDate", Date),
        ("EnteredTime", Str),
        ("ClinicianUserInRoleGuid", Str),
        ("EnteredByUserInRoleGuid", Str),
        ("CodeId", I64),
        ("Dosage", Str),
        ("Quantity", F64),
        ("QuantityUnit", Str),
        ("ProblemObservationGuid", Str),
        ("CourseDurationInDays", I64),
        ("EstimatedNhsCost", F64),
        ("IsConfidential", Bool),
        ("Deleted", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "IssueRecordGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const CODING_CLINICAL_CODE: TableSpec = TableSpec {
    name: "Coding_ClinicalCode",
    columns: &[
        ("CodeId", I64),
        ("Term", Str),
        ("ReadTermId", Str),
        ("SnomedCTConceptId", I64),
        ("SnomedCTDescriptionId", I64),
        ("NationalCode", Str),
        ("NationalCodeCategory", Str),
        ("NationalDescription", Str),
        ("EmisCodeCategoryDescription", Str),
        ("ProcessingId", I64),
        ("ParentCodeId", I64),
    ],
    key: &["CodeId"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::None,
    patient: None,
};

pub const CODING_DRUG_CODE: TableSpec = TableSpec {
    name: "Coding_DrugCode",
    columns: &[
        ("CodeId", I64),
        ("Term", Str),
        ("DmdProductCodeId", I64),
        ("ProcessingId", I64),
    ],
    key: &["CodeId"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::None,
    patient: None,
};

pub const APPOINTMENT_SLOT: TableSpec = TableSpec {
    name: "Appointment_Slot",
    columns: &[
        ("SlotGuid", Str),
        ("AppointmentDate", Date),
        ("AppointmentStartTime", Str),
        ("PlannedDurationInMinutes", I64),
        ("PatientGuid", Str),
        ("SendInTime", Str),
        ("LeftTime", Str),
        ("DidNotAttend", Bool),
        ("PatientWaitInMin", I64),
        ("AppointmentDelayInMin", I64),
        ("ActualDurationInMinutes", I64),
        ("OrganisationGuid", Str),
        ("SessionGuid", Str),
        ("DnaReasonCodeId", I64),
        ("Deleted", Bool),
        ("ProcessingId", I64),
    ],
    key: &["SlotGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

pub const AGREEMENTS_SHARING_ORGANISATION: TableSpec = TableSpec {
    name: "Agreements_SharingOrganisation",
    columns: &[
        ("OrganisationGuid", Str),
        ("IsActivated", Bool),
        ("LastModifiedDate", Date),
        ("Disabled", Bool),
        ("Deleted", Bool),
    ],
    key: &["OrganisationGuid"],
    version: None,
    delete: DeleteMarker::EmisDeleted,
    patient: None,
};

/// Every EMIS table phm knows, in the order ingest applies them (coding and
/// admin before clinical, so look-ups exist when clinical rows are mapped).
pub const ALL: &[&TableSpec] = &[
    &AGREEMENTS_SHARING_ORGANISATION,
    &ADMIN_ORGANISATION,
    &ADMIN_USER_IN_ROLE,
    &CODING_CLINICAL_CODE,
    &CODING_DRUG_CODE,
    &ADMIN_PATIENT,
    &CARE_RECORD_CONSULTATION,
    &CARE_RECORD_OBSERVATION,
    &CARE_RECORD_PROBLEM,
    &PRESCRIBING_DRUG_RECORD,
    &PRESCRIBING_ISSUE_RECORD,
    &APPOINTMENT_SLOT,
];

/// Tables a bulk must carry: without the patient table a bulk would replace
/// the practice's record with no patients at all.
pub const BULK_REQUIRED: &[&str] = &["Admin_Patient"];

/// Tables of the extract that phm knows and does not read.
pub const KNOWN_UNREAD: &[&str] = &[];

pub fn table(name: &str) -> Option<&'static TableSpec> {
    ALL.iter().copied().find(|t| t.name == name)
}
