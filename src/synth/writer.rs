//! Writing supplier tables as Parquet, a row at a time, and a delivery's manifest.
//!
//! [`Rows`] holds one Arrow builder per column of a [`TableSpec`] and is filled in
//! column order (debug builds check each value lands in the column it names). A
//! [`TableFile`] streams its rows to an `ArrowWriter` in batches of
//! [`BATCH_ROWS`], in row groups of about a million rows, Snappy-compressed, so
//! memory stays bounded whatever the table's size. A [`DeliveryFiles`] is one
//! delivery folder: a file per table, then `manifest.json` listing each file's
//! table, path, row count and SHA-256.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int8Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::source::manifest::{ExtractKind, Manifest, ManifestFile, Supplier, sha256_file};
use crate::source::table::{TableSpec, Ty};
use crate::synth::SynthError;

/// Rows buffered in builders before they are handed to the Parquet writer.
pub const BATCH_ROWS: usize = 64 * 1024;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Columns that are (nearly) unique per row: dictionary encoding would only fill a
/// dictionary page and fall back, so they are written plain.
const UNIQUE_COLUMNS: &[&str] = &[
    "ObservationGuid",
    "ParentObservationGuid",
    "ConsultationGuid",
    "IssueRecordGuid",
    "DrugRecordGuid",
    "SlotGuid",
    "AppointmentSlotGuid",
    "RowIdentifier",
    "IDEvent",
    "IDAppointment",
    "IDRepeatTemplate",
];

/// A value for [`Rows::rest_with`].
#[derive(Debug, Clone, Copy)]
pub enum Cell {
    Bool(bool),
    I64(i64),
    I8(i8),
}

enum Column {
    Str(StringBuilder),
    I64(Int64Builder),
    I8(Int8Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(ty: Ty) -> Column {
        match ty {
            Ty::Str => Column::Str(StringBuilder::new()),
            Ty::I64 => Column::I64(Int64Builder::new()),
            Ty::I8 => Column::I8(Int8Builder::new()),
            Ty::F64 => Column::F64(Float64Builder::new()),
            Ty::Bool => Column::Bool(BooleanBuilder::new()),
            Ty::Date => Column::Date(Date32Builder::new()),
            Ty::Ts => Column::Ts(TimestampMicrosecondBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Str(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::I8(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Ts(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::I8(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Ts(b) => Arc::new(b.finish()),
        }
    }
}

/// Builders for one table, filled a row at a time in column order.
pub struct Rows {
    spec: &'static TableSpec,
    columns: Vec<Column>,
    cursor: usize,
    len: usize,
}

macro_rules! typed_appends {
    ($($name:ident, $opt:ident, $variant:ident, $ty:ty;)*) => {$(
        pub fn $name(&mut self, column: &str, value: $ty) -> &mut Self {
            match self.next(column) {
                Column::$variant(b) => b.append_value(value),
                _ => self.wrong_type(column),
            }
            self
        }

        pub fn $opt(&mut self, column: &str, value: Option<$ty>) -> &mut Self {
            match value {
                Some(v) => self.$name(column, v),
                None => self.null(column),
            }
        }
    )*};
}

impl Rows {
    pub fn new(spec: &'static TableSpec) -> Rows {
        Rows {
            spec,
            columns: spec
                .columns
                .iter()
                .map(|(_, ty)| Column::new(*ty))
                .collect(),
            cursor: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn next(&mut self, column: &str) -> &mut Column {
        debug_assert_eq!(
            self.spec.columns.get(self.cursor).map(|(name, _)| *name),
            Some(column),
            "{}: values must follow the spec's column order",
            self.spec.name
        );
        self.cursor += 1;
        &mut self.columns[self.cursor - 1]
    }

    fn wrong_type(&self, column: &str) -> ! {
        panic!("{}.{column} is not of the appended type", self.spec.name)
    }

    typed_appends! {
        str, opt_str, Str, &str;
        i64, opt_i64, I64, i64;
        i8, opt_i8, I8, i8;
        f64, opt_f64, F64, f64;
        bool, opt_bool, Bool, bool;
        date, opt_date, Date, i32;
        ts, opt_ts, Ts, i64;
    }

    pub fn null(&mut self, column: &str) -> &mut Self {
        self.next(column).append_null();
        self
    }

    /// Fills every remaining column of the row with `value(column)`, null where it
    /// gives `None` (sparse delete rows).
    pub fn rest_with(&mut self, value: impl Fn(&str) -> Option<Cell>) -> &mut Self {
        while self.cursor < self.columns.len() {
            let name = self.spec.columns[self.cursor].0;
            match (value(name), &mut self.columns[self.cursor]) {
                (None, column) => column.append_null(),
                (Some(Cell::Bool(v)), Column::Bool(b)) => b.append_value(v),
                (Some(Cell::I64(v)), Column::I64(b)) => b.append_value(v),
                (Some(Cell::I8(v)), Column::I8(b)) => b.append_value(v),
                (Some(_), _) => self.wrong_type(name),
            }
            self.cursor += 1;
        }
        self
    }

    /// Completes the row.
    pub fn end(&mut self) {
        assert_eq!(
            self.cursor,
            self.columns.len(),
            "{}: row ended after {} columns",
            self.spec.name,
            self.cursor
        );
        self.cursor = 0;
        self.len += 1;
    }

    fn take_batch(&mut self) -> RecordBatch {
        let columns = self.columns.iter_mut().map(Column::finish).collect();
        self.len = 0;
        RecordBatch::try_new(self.spec.schema(), columns)
            .expect("builders follow the spec's schema")
    }
}

/// One table's Parquet file, written as rows arrive.
pub struct TableFile {
    pub rows: Rows,
    writer: ArrowWriter<BufWriter<File>>,
    path: PathBuf,
    file_name: String,
    written: u64,
}

fn properties(spec: &TableSpec) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by("phm synth".to_string());
    for (name, _) in spec.columns {
        if UNIQUE_COLUMNS.contains(name) {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
        }
    }
    builder.build()
}

impl TableFile {
    pub fn create(
        dir: &Path,
        file_name: String,
        spec: &'static TableSpec,
    ) -> Result<TableFile, SynthError> {
        let path = dir.join(&file_name);
        let file = File::create(&path).map_err(|source| SynthError::Io {
            path: path.clone(),
            source,
        })?;
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            spec.schema(),
            Some(properties(spec)),
        )
        .map_err(|source| SynthError::Parquet {
            path: path.clone(),
            source,
        })?;
        Ok(TableFile {
            rows: Rows::new(spec),
            writer,
            path,
            file_name,
            written: 0,
        })
    }

    pub fn spec(&self) -> &'static TableSpec {
        self.rows.spec
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// Hands buffered rows to the Parquet writer.
    pub fn flush(&mut self) -> Result<(), SynthError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.written += self.rows.len() as u64;
        let batch = self.rows.take_batch();
        self.writer
            .write(&batch)
            .map_err(|source| SynthError::Parquet {
                path: self.path.clone(),
                source,
            })
    }

    pub fn flush_if_full(&mut self) -> Result<(), SynthError> {
        if self.rows.len() >= BATCH_ROWS {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Closes the file and describes it for the manifest.
    pub fn finish(mut self) -> Result<ManifestFile, SynthError> {
        self.flush()?;
        let path = self.path.clone();
        let parquet = |source| SynthError::Parquet {
            path: path.clone(),
            source,
        };
        let mut inner = self.writer.into_inner().map_err(parquet)?;
        inner.flush().map_err(|source| SynthError::Io {
            path: path.clone(),
            source,
        })?;
        drop(inner);
        let sha256 = sha256_file(&path).map_err(|source| SynthError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(ManifestFile {
            table: self.rows.spec.name.to_string(),
            path: self.file_name,
            rows: self.written,
            sha256,
        })
    }
}

/// The header of a delivery's manifest.
#[derive(Debug, Clone)]
pub struct DeliveryHeader {
    pub practice: String,
    pub supplier: Supplier,
    pub schema_version: &'static str,
    pub extract_id: String,
    pub kind: ExtractKind,
    pub extracted_at: chrono::NaiveDateTime,
}

/// One delivery folder being written.
pub struct DeliveryFiles {
    pub dir: PathBuf,
    pub header: DeliveryHeader,
    files: Vec<TableFile>,
    /// Index of the file the last row went to.
    last: usize,
}

impl DeliveryFiles {
    /// Creates the folder and one file per table, named by `file_name`.
    pub fn create(
        dir: PathBuf,
        header: DeliveryHeader,
        tables: &[&'static TableSpec],
        file_name: impl Fn(&TableSpec) -> String,
    ) -> Result<DeliveryFiles, SynthError> {
        std::fs::create_dir_all(&dir).map_err(|source| SynthError::Io {
            path: dir.clone(),
            source,
        })?;
        let files = tables
            .iter()
            .map(|spec| TableFile::create(&dir, file_name(spec), spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeliveryFiles {
            dir,
            header,
            files,
            last: 0,
        })
    }

    /// The rows of table `spec`, which must be one of this delivery's tables.
    pub fn rows(&mut self, spec: &TableSpec) -> &mut Rows {
        &mut self.file(spec).rows
    }

    pub fn file(&mut self, spec: &TableSpec) -> &mut TableFile {
        // Table specs are `const`s, so they are matched by name; rows mostly go to the
        // table of the previous row, so that one is tried first.
        if self.files[self.last].spec().name != spec.name {
            self.last = self
                .files
                .iter()
                .position(|f| f.spec().name == spec.name)
                .unwrap_or_else(|| panic!("{} is not a table of this delivery", spec.name));
        }
        &mut self.files[self.last]
    }

    pub fn files(&self) -> &[TableFile] {
        &self.files
    }

    pub fn flush_if_full(&mut self) -> Result<(), SynthError> {
        self.files.iter_mut().try_for_each(TableFile::flush_if_full)
    }

    /// Closes every file and writes `manifest.json`.
    pub fn finish(self) -> Result<Manifest, SynthError> {
        let files = self
            .files
            .into_iter()
            .map(TableFile::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let h = self.header;
        let manifest = Manifest {
            practice: h.practice,
            supplier: h.supplier,
            schema_version: h.schema_version.to_string(),
            extract_id: h.extract_id,
            kind: h.kind,
            extracted_at: h.extracted_at,
            files,
        };
        manifest.write(&self.dir).map_err(|source| SynthError::Io {
            path: self.dir.clone(),
            source,
        })?;
        Ok(manifest)
    }
}

/// An upper-case 36-character GUID, on the stack.
#[derive(Clone, Copy)]
pub struct Guid([u8; 36]);

impl Guid {
    /// The GUID of `id` within a practice whose GUIDs are salted with `salt`; distinct
    /// ids give distinct GUIDs (the first 64 bits are a bijection of `salt + id`).
    pub fn of(salt: u64, id: u64) -> Guid {
        use crate::synth::sampling::splitmix64;
        let high = splitmix64(salt.wrapping_add(id));
        let low =
            splitmix64(high ^ salt.rotate_left(17)) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000;
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = [b'-'; 36];
        let nibbles = (0..16)
            .map(|i| (high >> (60 - 4 * i)) & 0xF)
            .chain((0..16).map(|i| (low >> (60 - 4 * i)) & 0xF));
        let positions = (0..36).filter(|p| ![8, 13, 18, 23].contains(p));
        for (p, n) in positions.zip(nibbles) {
            out[p] = HEX[n as usize];
        }
        Guid(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

/// `HH:mm:ss` for a minute of the day.
pub struct ClockTime([u8; 8]);

impl ClockTime {
    pub fn of(minute: u16) -> ClockTime {
        let (h, m) = (minute / 60 % 24, minute % 60);
        let digit = |d: u16| b'0' + d as u8;
        ClockTime([
            digit(h / 10),
            digit(h % 10),
            b':',
            digit(m / 10),
            digit(m % 10),
            b':',
            b'0',
            b'0',
        ])
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::emis::tables::CODING_DRUG_CODE;
    use crate::source::manifest::parquet_row_count;

    #[test]
    fn guids_are_upper_case_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for id in 0..10_000 {
            let g = Guid::of(77, id);
            let s = g.as_str();
            assert_eq!(s.len(), 36);
            assert_eq!(s.matches('-').count(), 4);
            assert!(
                s.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()),
                "{s}"
            );
            assert!(seen.insert(s.to_string()));
        }
        assert_ne!(Guid::of(1, 5).as_str(), Guid::of(2, 5).as_str());
    }

    #[test]
    fn clock_times() {
        for (minute, text) in [
            (0, "00:00:00"),
            (8 * 60 + 5, "08:05:00"),
            (23 * 60 + 59, "23:59:00"),
        ] {
            assert_eq!(ClockTime::of(minute).as_str(), text);
        }
    }

    #[test]
    fn table_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut file =
            TableFile::create(dir.path(), "drugs.parquet".into(), &CODING_DRUG_CODE).unwrap();
        for i in 0..3 {
            file.rows
                .i64("CodeId", i)
                .str("Term", "Apixaban 5mg tablets")
                .opt_i64("DmdProductCodeId", None)
                .i64("ProcessingId", 1);
            file.rows.end();
        }
        let described = file.finish().unwrap();
        assert_eq!(described.rows, 3);
        assert_eq!(described.table, "Coding_DrugCode");
        let path = dir.path().join("drugs.parquet");
        assert_eq!(parquet_row_count(&path).unwrap(), 3);
        assert_eq!(described.sha256, sha256_file(&path).unwrap());
    }

    #[test]
    #[should_panic(expected = "row ended after")]
    fn short_rows_are_refused() {
        let mut rows = Rows::new(&CODING_DRUG_CODE);
        rows.i64("CodeId", 1);
        rows.end();
    }
}
