//! A cohort's output folder read back into per-person outcomes.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::cohort::outcome::{CriterionOutcome, PersonOutcome, Reason, Status};
use crate::cohort::{Error, Result};

/// Membership and explanations of the cohort output in `dir`, sorted by person key.
/// Refuses the outputs of a run that did not finish ([`super::marker`]).
pub fn read_outcomes(dir: &Path) -> Result<Vec<PersonOutcome>> {
    super::marker::require(dir)?;
    let membership = read(&dir.join("membership.parquet"))?;
    let explanations = read(&dir.join("explanations.parquet"))?;
    let m = Columns::new(&membership, dir)?;
    let (pk, practice, status) = (m.str("person_key")?, m.str("practice")?, m.str("status")?);
    let included = m.bool("included")?;
    let (deciding, near) = (m.str("deciding_rule")?, m.str("near_miss_rule")?);
    let mut out: Vec<PersonOutcome> = Vec::with_capacity(membership.num_rows());
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..membership.num_rows() {
        let key = pk.value(i).to_string();
        let status = Status::parse(status.value(i))
            .ok_or_else(|| bad(dir, format!("unknown status {:?}", status.value(i))))?;
        at.insert(key.clone(), out.len());
        out.push(PersonOutcome {
            person_key: key,
            practice: opt_str(&practice, i),
            status,
            included: (!included.is_null(i)).then(|| included.value(i)),
            deciding_rule: opt_str(&deciding, i),
            near_miss_rule: opt_str(&near, i),
            criteria: BTreeMap::new(),
        });
    }
    let e = Columns::new(&explanations, dir)?;
    let (pk, criterion, reason, evidence) = (
        e.str("person_key")?,
        e.str("criterion")?,
        e.str("reason")?,
        e.str("evidence")?,
    );
    let verdict = e.bool("verdict")?;
    let (count, refused) = (e.i64("count")?, e.i64("refused")?);
    let value = e.f64("value")?;
    for i in 0..explanations.num_rows() {
        let Some(&p) = at.get(pk.value(i)) else {
            return Err(bad(
                dir,
                format!("explanation for {} who is not in membership", pk.value(i)),
            ));
        };
        let reason = Reason::parse(reason.value(i))
            .ok_or_else(|| bad(dir, format!("unknown reason {:?}", reason.value(i))))?;
        out[p].criteria.insert(
            criterion.value(i).to_string(),
            CriterionOutcome {
                verdict: (!verdict.is_null(i)).then(|| verdict.value(i)),
                reason,
                evidence: opt_str(&evidence, i),
                count: count.value(i) as u64,
                value: (!value.is_null(i)).then(|| value.value(i)),
                refused: refused.value(i) as u64,
            },
        );
    }
    out.sort_by(|a, b| a.person_key.cmp(&b.person_key));
    Ok(out)
}

/// One output file as a single batch.
pub(crate) fn read(path: &Path) -> Result<RecordBatch> {
    crate::store::read_parquet(path).map_err(|e| Error::Store(e.to_string()))
}

fn bad(dir: &Path, message: String) -> Error {
    Error::Store(format!("{}: {message}", dir.display()))
}

pub(crate) fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

/// Typed columns of an output batch (cast to the type asked for).
pub(crate) struct Columns<'a> {
    batch: &'a RecordBatch,
    dir: &'a Path,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, dir: &'a Path) -> Result<Columns<'a>> {
        Ok(Columns { batch, dir })
    }

    fn column(&self, name: &str, t: &DataType) -> Result<std::sync::Arc<dyn Array>> {
        let c = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| bad(self.dir, format!("no column {name}")))?;
        Ok(cast(c, t)?)
    }

    /// Column `name` cast to `t`, as the array type of `t`.
    fn typed<A: Array + Clone + 'static>(&self, name: &str, t: DataType) -> Result<A> {
        let c = self.column(name, &t)?;
        Ok(c.as_any()
            .downcast_ref::<A>()
            .unwrap_or_else(|| panic!("a cast to {t} gives its array type"))
            .clone())
    }

    pub(crate) fn str(&self, name: &str) -> Result<StringArray> {
        self.typed(name, DataType::Utf8)
    }

    pub(crate) fn bool(&self, name: &str) -> Result<BooleanArray> {
        self.typed(name, DataType::Boolean)
    }

    pub(crate) fn i64(&self, name: &str) -> Result<Int64Array> {
        self.typed(name, DataType::Int64)
    }

    pub(crate) fn date(&self, name: &str) -> Result<Date32Array> {
        self.typed(name, DataType::Date32)
    }

    pub(crate) fn f64(&self, name: &str) -> Result<Float64Array> {
        self.typed(name, DataType::Float64)
    }
}
