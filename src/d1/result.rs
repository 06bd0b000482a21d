//! What D1 calls return: `D1Result` with its `meta`, and `D1ExecResult`.

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use serde_json::{Map, Value as Json};

use super::value::D1Value;
use super::D1Error;

/// One row as the binding returns it from `all()` / `first()`: an object keyed by
/// column name, in column order.
pub type D1Row = Map<String, Json>;

/// The result of `all()`, `run()` and of each statement of a `batch()`.
///
/// Rows are kept in D1's internal rows-and-columns form; [`D1Result::results`] and the
/// `Serialize` impl give the object form the binding exposes (`{success, meta, results}`).
#[derive(Debug, Clone, PartialEq)]
pub struct D1Result {
    /// Always `true`: failures are errors, never a result.
    pub success: bool,
    /// Timing, change and I/O counters of the statement.
    pub meta: D1Meta,
    /// Column names in order (duplicates kept).
    pub columns: Vec<String>,
    /// Rows in order, one value per column.
    pub rows: Vec<Vec<D1Value>>,
}

impl D1Result {
    /// The rows as objects. A duplicated column name keeps one key, holding the value of
    /// the *last* column of that name, at the position of the first (D1's rule).
    pub fn results(&self) -> Vec<D1Row> {
        self.rows
            .iter()
            .map(|r| row_object(&self.columns, r))
            .collect()
    }

    /// The rows deserialised into `T` (a struct whose fields are column names).
    pub fn results_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<Vec<T>> {
        self.rows
            .iter()
            .map(|r| serde_json::from_value(Json::Object(row_object(&self.columns, r))))
            .collect()
    }

    /// `raw()`'s form: rows as arrays, with the column names first when asked.
    pub fn raw(&self, column_names: bool) -> Vec<Vec<Json>> {
        let header = column_names.then(|| {
            self.columns
                .iter()
                .map(|c| Json::from(c.as_str()))
                .collect()
        });
        header
            .into_iter()
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.iter().map(D1Value::to_json).collect()),
            )
            .collect()
    }

    /// This result in D1's rows-and-columns form, `{success, meta, results: {columns,
    /// rows}}`, serialised straight from the rows: what the REST API's `raw` and the
    /// binding's `ROWS_AND_COLUMNS` format return.
    pub(crate) fn rows_and_columns(&self) -> RowsAndColumns<'_> {
        RowsAndColumns(self)
    }

    /// `first()`'s form: the first row as an object, if any.
    pub fn first(&self) -> Option<D1Row> {
        self.rows.first().map(|r| row_object(&self.columns, r))
    }

    /// `first(column)`'s form: that column of the first row. `Ok(None)` when there is no
    /// row; `D1_COLUMN_NOTFOUND` when the row has no such column.
    pub fn first_column(&self, column: &str) -> Result<Option<Json>, D1Error> {
        match self.first() {
            None => Ok(None),
            Some(mut row) => row
                .remove(column)
                .map(Some)
                .ok_or_else(|| D1Error::ColumnNotFound(column.to_owned())),
        }
    }
}

fn row_object(columns: &[String], row: &[D1Value]) -> D1Row {
    let mut obj = Map::with_capacity(columns.len());
    for (name, value) in columns.iter().zip(row) {
        // With `preserve_order`, inserting an existing key replaces its value in place.
        obj.insert(name.clone(), value.to_json());
    }
    obj
}

impl Serialize for D1Result {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a D1Result);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.rows.iter().map(|r| RowRef(&self.0.columns, r)))
            }
        }
        struct RowRef<'a>(&'a [String], &'a [D1Value]);
        impl Serialize for RowRef<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Duplicate names need D1's last-value-wins rule; that case is rare.
                let unique = self
                    .0
                    .iter()
                    .enumerate()
                    .all(|(i, c)| !self.0[..i].contains(c));
                if !unique {
                    return row_object(self.0, self.1).serialize(s);
                }
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0.iter().zip(self.1) {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let mut st = s.serialize_struct("D1Result", 3)?;
        st.serialize_field("success", &self.success)?;
        st.serialize_field("meta", &self.meta)?;
        st.serialize_field("results", &Rows(self))?;
        st.end()
    }
}

/// See [`D1Result::rows_and_columns`].
pub(crate) struct RowsAndColumns<'a>(&'a D1Result);

impl Serialize for RowsAndColumns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Table<'a> {
            columns: &'a [String],
            rows: &'a [Vec<D1Value>],
        }
        let mut st = s.serialize_struct("D1Result", 3)?;
        st.serialize_field("success", &self.0.success)?;
        st.serialize_field("meta", &self.0.meta)?;
        st.serialize_field(
            "results",
            &Table {
                columns: &self.0.columns,
                rows: &self.0.rows,
            },
        )?;
        st.end()
    }
}

/// `meta` of a [`D1Result`], with every field D1 reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct D1Meta {
    /// Milliseconds spent executing inside the database.
    pub duration: f64,
    /// Rows changed, counted as the delta of SQLite's `total_changes()` (so trigger changes count).
    pub changes: u64,
    /// The connection's `last_insert_rowid()` after the statement (not reset by non-inserts).
    pub last_row_id: i64,
    /// Whether the statement changed the database.
    pub changed_db: bool,
    /// Size of the database in bytes after the statement.
    pub size_after: u64,
    /// Rows read from tables and indexes, counted in the VDBE as D1 counts them.
    pub rows_read: u64,
    /// Rows written to tables and indexes, counted in the VDBE as D1 counts them.
    pub rows_written: u64,
    /// Which backend answered (`"tristore.db"`).
    pub served_by: std::borrow::Cow<'static, str>,
    /// Newer home of `duration`.
    pub timings: D1Timings,
}

/// `meta.timings`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct D1Timings {
    /// Same measurement as `meta.duration`.
    pub sql_duration_ms: f64,
}

/// The result of `exec()`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct D1ExecResult {
    /// Number of queries (lines) executed.
    pub count: usize,
    /// Sum of their durations, in milliseconds.
    pub duration: f64,
}
