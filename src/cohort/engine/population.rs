//! The base population at the index date: one row per person known to the
//! store with the registration at index and the status
//! (`docs/cohort-language.md`, "Base population").
//!
//! Registration rows count at the organisation they are about
//! (`registered_at`); rows about another practice in the store are not used
//! ("Registrations at other organisations").
//!
//! Result `pop` ([`super::held`]): `person_key`, `practice` (registration at
//! index, null when not registered or registered outside the network),
//! `attr_practice` (that practice, else the greatest practice holding a record
//! of the person: the practice attrition counts the person under), `status`.

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::prelude::*;

use super::dates::{date_lit, shift};
use super::held::{Held, Scratch};
use super::scan::StoreView;
use crate::cohort::model::{Definition, Table};
use crate::cohort::outcome::Status;
use crate::cohort::{Error, Result};

/// The registrations at index and patient records for one set of
/// registration types, shared by the cohorts of a run that ask for it.
#[derive(Default)]
pub struct Bases {
    written: Vec<(Vec<String>, Held)>,
}

impl Bases {
    /// Writes the base of every registration-type set `cohorts` ask for.
    pub async fn prepare(
        ctx: &SessionContext,
        view: &StoreView,
        cohorts: &[crate::cohort::Cohort],
        index: NaiveDate,
        person: Option<&str>,
        work: &Scratch,
    ) -> Result<Bases> {
        let mut bases = Bases::default();
        for c in cohorts {
            let types = &c.def.population.registration_types;
            bases.get(ctx, view, types, index, person, work).await?;
        }
        Ok(bases)
    }

    /// The base written for `types` by [`Bases::prepare`].
    fn held(&self, types: &[String]) -> Result<Held> {
        let mut key = types.to_vec();
        key.sort();
        key.dedup();
        self.written
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| Error::Usage(format!("no registrations prepared for {key:?}")))
    }

    /// `base_<n>`: `person_key`, `reg_practice` (null unless registered at a
    /// practice in the store), `reg_outside`, `reg_start`, `dob`,
    /// `dod`, `is_test`, `rec_practice`, one row per person known to the store.
    async fn get(
        &mut self,
        ctx: &SessionContext,
        view: &StoreView,
        types: &[String],
        index: NaiveDate,
        person: Option<&str>,
        work: &Scratch,
    ) -> Result<Held> {
        let mut key = types.to_vec();
        key.sort();
        key.dedup();
        if let Some((_, p)) = self.written.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let df = base(ctx, view, &key, index, person).await?;
        let held = work
            .hold(df, &format!("base_{}", self.written.len()))
            .await?;
        self.written.push((key, held.clone()));
        Ok(held)
    }
}

pub async fn write(
    ctx: &SessionContext,
    bases: &Bases,
    def: &Definition,
    index: NaiveDate,
    unavailable: &[String],
    scratch: &Scratch,
) -> Result<Held> {
    let base = bases
        .held(&def.population.registration_types)?
        .read(ctx)
        .await?;
    let df = status(base, def, index, unavailable)?;
    scratch.hold(df, "pop").await
}

/// Age in whole years at `index` of a person born on `dob`: birthdays on or
/// before the index date (29 February birthdays fall on 1 March in other years,
/// which the month/day comparison gives without a special case).
pub fn age_expr(dob: Expr, index: NaiveDate) -> Expr {
    let part = |p: &str| cast(date_part(lit(p), dob.clone()), DataType::Int64);
    let (by, bm, bd) = (part("year"), part("month"), part("day"));
    let (m, d) = (index.month() as i64, index.day() as i64);
    let before_birthday = bm.clone().gt(lit(m)).or(bm.eq(lit(m)).and(bd.gt(lit(d))));
    lit(index.year() as i64)
        - by
        - when(before_birthday, lit(1i64))
            .otherwise(lit(0i64))
            .expect("CASE builds")
}

async fn base(
    ctx: &SessionContext,
    view: &StoreView,
    types: &[String],
    index: NaiveDate,
    person: Option<&str>,
) -> Result<DataFrame> {
    let idx = date_lit(index);
    let patients = view.read(ctx, Table::Patients, person).await?;
    let persons = patients.clone().aggregate(
        vec![col("person_key")],
        vec![max(col("practice")).alias("rec_practice")],
    )?;
    let types: Vec<Expr> = types.iter().map(|t| lit(t.as_str())).collect();
    // The organisation a row is about: `registered_at` (trimmed, upper case),
    // the delivering practice when it is null or empty (EMIS rows always name
    // the delivering practice; TPP history rows may name another one).
    let org = coalesce(vec![
        nullif(upper(trim(vec![col("registered_at")])), lit("")),
        col("practice"),
    ]);
    let own = org.clone().eq(col("practice"));
    // A row about another organisation is used only when that organisation's
    // own extract is not in the store: it then says the patient was registered
    // outside the network. A practice in the store decides for itself.
    let members: Vec<Expr> = view
        .practices
        .iter()
        .map(|p| lit(p.practice.as_str()))
        .collect();
    let used = if members.is_empty() {
        lit(true)
    } else {
        own.clone().or(org.clone().in_list(members, false).not())
    };
    let in_network = when(own, lit("1")).otherwise(lit("0"))?;
    let regs = view
        .read(ctx, Table::Registrations, person)
        .await?
        .filter(
            col("registration_type")
                .in_list(types, false)
                .and(used)
                .and(col("start_date").is_not_null())
                .and(col("start_date").lt_eq(idx.clone()))
                .and(
                    col("end_date")
                        .is_null()
                        .or(col("end_date").gt(idx.clone())),
                ),
        )?
        // The registration at index: latest start date, then one at a
        // practice in the store over one outside it, then greatest
        // organisation (then greatest patient id, for a duplicated record), by
        // aggregating a key that orders them
        // ("YYYY-MM-DD" \x01 "1"|"0" \x01 organisation \x01 patient id).
        .aggregate(
            vec![col("person_key")],
            vec![
                max(concat(vec![
                    cast(col("start_date"), DataType::Utf8),
                    lit("\u{1}"),
                    in_network,
                    lit("\u{1}"),
                    org,
                    lit("\u{1}"),
                    col("patient_id"),
                ]))
                .alias("reg"),
            ],
        )?;
    let part = |n: i64| split_part(col("reg"), lit("\u{1}"), lit(n));
    let regs = regs.select(vec![
        col("person_key").alias("r_pk"),
        // Null when the registration at index is outside the network.
        when(part(2).eq(lit("1")), part(3))
            .end()?
            .alias("reg_practice"),
        part(2).eq(lit("0")).alias("reg_outside"),
        part(4).alias("r_pid"),
        cast(part(1), DataType::Date32).alias("reg_start"),
    ])?;
    let rows = patients.select(vec![
        col("practice").alias("p_practice"),
        col("patient_id").alias("p_pid"),
        col("date_of_birth").alias("dob"),
        col("date_of_death").alias("dod"),
        col("is_test_patient").alias("is_test"),
    ])?;
    let joined = persons
        .join(regs, JoinType::Left, &["person_key"], &["r_pk"], None)?
        .join(
            rows,
            JoinType::Left,
            &["reg_practice", "r_pid"],
            &["p_practice", "p_pid"],
            None,
        )?;

    Ok(joined.select(vec![
        col("person_key"),
        col("reg_practice"),
        coalesce(vec![col("reg_outside"), lit(false)]).alias("reg_outside"),
        col("reg_start"),
        col("dob"),
        col("dod"),
        col("is_test"),
        col("rec_practice"),
    ])?)
}

/// Each person's status on `index`, in the documented order.
fn status(
    base: DataFrame,
    def: &Definition,
    index: NaiveDate,
    unavailable: &[String],
) -> Result<DataFrame> {
    let idx = date_lit(index);
    let pop = &def.population;
    let joined = base;
    let status = |s: Status| lit(s.name());
    let mut case = when(col("reg_outside"), status(Status::RegisteredOutsideNetwork));
    case.when(col("reg_practice").is_null(), status(Status::NotRegistered));
    if !unavailable.is_empty() {
        case.when(
            col("reg_practice")
                .in_list(unavailable.iter().map(|p| lit(p.as_str())).collect(), false),
            status(Status::Unavailable),
        );
    }
    case.when(
        coalesce(vec![col("is_test"), lit(false)]),
        status(Status::TestPatient),
    );
    case.when(
        col("dod").is_not_null().and(col("dod").lt_eq(idx.clone())),
        status(Status::Died),
    );
    if let Some(p) = pop.registered_for {
        let (months, days) = p.months_days();
        let since = shift(index, -(months as i32), -(days as i32)).ok_or_else(|| {
            Error::Usage(format!("registered_for {p} before {index} is out of range"))
        })?;
        case.when(
            col("reg_start").gt(date_lit(since)),
            status(Status::RegistrationTooShort),
        );
    }
    if pop.age_min.is_some() || pop.age_max.is_some() {
        case.when(col("dob").is_null(), status(Status::AgeUnknown));
        let age = age_expr(col("dob"), index);
        let mut out_of_range = lit(false);
        if let Some(min) = pop.age_min {
            out_of_range = out_of_range.or(age.clone().lt(lit(min as i64)));
        }
        if let Some(max) = pop.age_max {
            out_of_range = out_of_range.or(age.gt(lit(max as i64)));
        }
        case.when(out_of_range, status(Status::AgeOutOfRange));
    }
    let status_expr = case.otherwise(status(Status::InPopulation))?;
    Ok(joined.select(vec![
        col("person_key"),
        col("reg_practice").alias("practice"),
        coalesce(vec![col("reg_practice"), col("rec_practice")]).alias("attr_practice"),
        status_expr.alias("status"),
    ])?)
}
