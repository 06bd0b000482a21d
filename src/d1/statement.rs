//! `D1PreparedStatement`: SQL plus bound values, and the binding's run methods.

use std::sync::Arc;

use serde_json::Value as Json;

use super::database::D1Database;
use super::error::D1Error;
use super::result::{D1Result, D1Row};
use super::value::D1Value;

/// A statement with its parameters, like the binding's `D1PreparedStatement`.
///
/// Placeholders are anonymous `?` or numbered `?NNN` (`?1` is the first value).
/// [`bind`](Self::bind) returns a new statement and replaces, not appends, the values.
#[derive(Clone, Debug)]
pub struct D1PreparedStatement {
    db: D1Database,
    sql: Arc<str>,
    params: Arc<[D1Value]>,
}

impl D1PreparedStatement {
    pub(crate) fn new(db: D1Database, sql: String) -> Self {
        D1PreparedStatement {
            db,
            sql: sql.into(),
            params: Arc::new([]),
        }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bound values.
    pub fn params(&self) -> &[D1Value] {
        &self.params
    }

    /// A copy of this statement with `values` as its parameters.
    pub fn bind<I, V>(&self, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<D1Value>,
    {
        D1PreparedStatement {
            db: self.db.clone(),
            sql: Arc::clone(&self.sql),
            params: values.into_iter().map(Into::into).collect(),
        }
    }

    /// [`bind`](Self::bind) with JavaScript-like values, converted as the binding does;
    /// an unsupported value is a `D1_TYPE_ERROR`, raised here as the binding raises it.
    pub fn bind_json(&self, values: &[Json]) -> Result<Self, D1Error> {
        let params = values
            .iter()
            .map(D1Value::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.bind(params))
    }

    /// Runs the statement and returns every row with `meta`.
    pub fn all(&self) -> Result<D1Result, D1Error> {
        self.db.run_statement(&self.sql, &self.params)
    }

    /// Same as [`all`](Self::all): D1 returns rows from `run()` too (e.g. `RETURNING`).
    pub fn run(&self) -> Result<D1Result, D1Error> {
        self.all()
    }

    /// The first row, or `None`. The whole statement runs (no `LIMIT 1` is added).
    pub fn first(&self) -> Result<Option<D1Row>, D1Error> {
        Ok(self.all()?.first())
    }

    /// One column of the first row: `Ok(None)` when there is no row,
    /// `D1_COLUMN_NOTFOUND` when the row lacks the column.
    pub fn first_column(&self, column: &str) -> Result<Option<Json>, D1Error> {
        self.all()?.first_column(column)
    }

    /// Rows as arrays in column order (duplicate columns kept), preceded by the column
    /// names when `column_names` is set (even when there are no rows).
    pub fn raw(&self, column_names: bool) -> Result<Vec<Vec<Json>>, D1Error> {
        Ok(self.all()?.raw(column_names))
    }
}
