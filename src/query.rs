//! Ad-hoc SQL (Polars SQL) over one window's tables: the calls and errors
//! of the window's tenant days, each with its `day`, the tenants, and the
//! summary tables of the same days. Only the contract's columns exist in
//! them (docs/CONTRACT.md §1), so no query can reach transcripts, messages
//! or secrets.
//!
//! Memory: the calls and errors are read a day at a time through the
//! pipeline `run` uses and spilled to Parquet in a private temporary
//! folder; the query scans those files with Polars' streaming engine, so
//! filters, projections and aggregations run in bounded memory. The
//! summary tables and the tenants are small and held in memory.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::error::{Error, Result};
use crate::frames::{calls_schema, errors_schema, tenants_schema};
use crate::pipeline::{for_each_chunk, Input, Plan, SourceSpec, Timings};
use crate::selection::TenantSelection;
use crate::summaries::Summaries;
use crate::tables::Table;
use crate::window::Window;

mod guard;
pub use guard::Checked;

/// Days the pipeline reads at a time: as `run` (measured on 90 days of 5 M
/// calls: 150 MB peak a day at a time, 300 MB a week at a time).
const CHUNK_DAYS: u32 = 1;

/// The most decimals a result column may have: Polars' decimal products
/// beyond it came out wrong without an error.
const MAX_RESULT_SCALE: usize = 28;

/// The platform tables a query may name, as `query` exposes them.
pub const SOURCE_TABLES: [&str; 3] = ["call_logs", "system_errors", "tenants"];

/// A table's columns as the query sees them.
pub fn table_schema(name: &str) -> Option<Schema> {
    let with_day = |mut schema: Schema| {
        schema.insert("day".into(), DataType::Date);
        schema
    };
    match name {
        "call_logs" => {
            let mut schema = calls_schema();
            // The engine's own flag, not a column of the platform.
            let _ = schema.shift_remove("errored");
            Some(with_day(schema))
        }
        "system_errors" => Some(with_day(errors_schema())),
        "tenants" => Some(tenants_schema()),
        _ => Table::reported()
            .find(|t| t.name() == name)
            .map(|t| t.schema()),
    }
}

/// Every table a query may name.
pub fn table_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SOURCE_TABLES.to_vec();
    names.extend(Table::reported().map(Table::name));
    names
}

/// Every column of every table, as the query sees them.
fn all_columns() -> std::collections::BTreeSet<String> {
    table_names()
        .into_iter()
        .filter_map(table_schema)
        .flat_map(|s| s.iter_names().map(|n| n.to_string()).collect::<Vec<_>>())
        .collect()
}

/// Parses the query with Polars' own SQL parser, allows only the
/// contract's tables (and the query's CTEs), and rewrites what Polars SQL
/// would answer wrong (`guard`): a usage error (exit 2) otherwise.
pub fn check(sql: &str) -> Result<Checked> {
    guard::check(sql, &table_names(), &all_columns())
}

/// A private folder for the spilled chunks, removed when dropped.
struct SpillDir(PathBuf);

impl SpillDir {
    fn create() -> Result<SpillDir> {
        let path = std::env::temp_dir().join(format!("callrollup-query-{}", uuid::Uuid::new_v4()));
        // A report stopped mid-computation still removes it.
        crate::signals::remove_on_stop(&path);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| {
            Error::io(
                format!(
                    "cannot create a spill folder in {} (set TMPDIR to a writable folder)",
                    std::env::temp_dir().display()
                ),
                e,
            )
        })?;
        Ok(SpillDir(path))
    }

    fn write(&self, name: &str, df: &mut DataFrame) -> Result<PathBuf> {
        let path = self.0.join(name);
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        // Written once and read once: LZ4 is cheaper than the default zstd
        // (11.3 s against 19.1 s for the bench window's group-by).
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(df)?;
        Ok(path)
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a query reads.
pub struct QueryInput<'a> {
    pub window: &'a Window,
    pub tenants: &'a TenantSelection,
    pub source: Option<&'a SourceSpec>,
    pub summaries: Option<&'a mut Summaries>,
}

/// A query ready to run: its tables registered, the spill kept alive.
pub struct Prepared {
    context: SQLContext,
    tables: Vec<&'static str>,
    sql: String,
    hidden: Vec<String>,
    engine: Engine,
    spill: Option<SpillDir>,
}

/// Reads the tables the checked query names and registers them.
pub fn prepare(checked: &Checked, input: QueryInput) -> Result<Prepared> {
    let tables = checked.tables.clone();
    let mut context = SQLContext::new();
    let wants = |t: &str| tables.contains(&t);
    let mut spill = None;
    if SOURCE_TABLES.iter().any(|t| wants(t)) {
        let spec = input.source.ok_or_else(|| {
            Error::usage(
                "call_logs, system_errors and tenants are read from the platform: pass --database-url (or DATABASE_URL) or --source DIR",
            )
        })?;
        let dir = SpillDir::create()?;
        let (calls, errors, tenants) = spill_window(spec, input.window, input.tenants, &dir)?;
        context.register("call_logs", scan(&calls, "call_logs")?);
        context.register("system_errors", scan(&errors, "system_errors")?);
        context.register("tenants", tenants.lazy());
        spill = Some(dir);
    }
    let summary_tables: Vec<Table> = Table::reported().filter(|t| wants(t.name())).collect();
    if !summary_tables.is_empty() {
        let summaries = input.summaries.ok_or_else(|| {
            Error::usage(
                "the summary tables are read from the target database or report files: pass --database-url / --target-url or --reports DIR",
            )
        })?;
        // The tables of one query are one state of the summary: a run
        // committing between two of them would mix its figures with the
        // ones before it.
        let frames = summaries.snapshot(|summaries| {
            summary_tables
                .iter()
                .map(|&table| {
                    summaries.table(table, input.window.from, input.window.to, input.tenants)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        for (table, df) in summary_tables.iter().zip(frames) {
            context.register(table.name(), df.lazy());
        }
    }
    Ok(Prepared {
        context,
        tables,
        sql: checked.sql.clone(),
        hidden: checked.hidden.clone(),
        // Polars 0.49's streaming engine aborts the process (an unsafe
        // precondition in its grouping tables) on two group-bys over the
        // two spilled tables, e.g. a UNION ALL or JOIN of call_logs and
        // system_errors grouped: such a query runs in memory.
        engine: if checked.grouped_selects > 1 {
            Engine::InMemory
        } else {
            Engine::Streaming
        },
        spill,
    })
}

/// The window's calls and errors, with their days, spilled chunk by chunk;
/// and the tenants.
fn spill_window(
    spec: &SourceSpec,
    window: &Window,
    tenants: &TenantSelection,
    dir: &SpillDir,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>, DataFrame)> {
    let mut input = Input::open(spec)?;
    let selection = input.selection(tenants)?;
    let plan = Plan {
        window,
        chunk_days: CHUNK_DAYS,
        selection: &selection,
    };
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    let mut tenant_frame = None;
    for_each_chunk(
        &mut input,
        &plan,
        &mut Timings::default(),
        |frames, _, chunk, _| {
            let (mut chunk_calls, mut chunk_errors) =
                crate::rollup::day_rows(&frames, chunk.from, chunk.to)?;
            if tenant_frame.is_none() {
                tenant_frame = Some(frames.tenants.clone());
            }
            drop(frames);
            let _ = chunk_calls.drop_in_place("errored")?;
            let n = calls.len();
            calls.push(dir.write(&format!("call_logs-{n:04}.parquet"), &mut chunk_calls)?);
            errors.push(dir.write(&format!("system_errors-{n:04}.parquet"), &mut chunk_errors)?);
            Ok(())
        },
    )?;
    let tenants = match tenant_frame {
        Some(df) => df,
        None => DataFrame::empty_with_schema(&tenants_schema()),
    };
    Ok((calls, errors, tenants))
}

fn scan(paths: &[PathBuf], table: &str) -> Result<LazyFrame> {
    if paths.is_empty() {
        let schema = table_schema(table).expect("a known table");
        return Ok(DataFrame::empty_with_schema(&schema).lazy());
    }
    Ok(LazyFrame::scan_parquet_files(
        paths.to_vec().into(),
        ScanArgsParquet::default(),
    )?)
}

/// Runs `f`, turning a panic inside Polars into a usage error: a query
/// that makes Polars panic is one it cannot run, not a crash.
/// The panic's own report (a backtrace on stderr) is silenced meanwhile.
fn no_panic<T>(f: impl FnOnce() -> PolarsResult<T>) -> PolarsResult<T> {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(report);
    result.unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".into());
        Err(polars_err!(ComputeError: "Polars stopped on an internal error ({reason})"))
    })
}

impl Prepared {
    /// The query's plan; a SQL or column error is a usage error (exit 2).
    pub fn plan(&mut self) -> Result<LazyFrame> {
        let sql = self.sql.clone();
        let mut plan = no_panic(|| self.context.execute(&sql)).map_err(|e| self.explain(e))?;
        // Resolving the schema finds unknown columns before any work.
        let schema = no_panic(|| plan.collect_schema()).map_err(|e| self.explain(e))?;
        // A decimal with more decimals than digits, or more than 28, is what
        // Polars makes of products of wide decimals, and their values were
        // wrong (6.0 as DECIMAL(38,20) × 6.0 as DECIMAL(38,10) printed
        // -0.0018…): refused.
        for (name, dtype) in schema.iter() {
            if let DataType::Decimal(precision, Some(scale)) = dtype {
                if *scale > precision.unwrap_or(38) || *scale > MAX_RESULT_SCALE {
                    return Err(Error::usage(format!(
                        "column {name}: {scale} decimals, more than {MAX_RESULT_SCALE}; Polars' decimal products overflow silently there (a wrong value, not an error): CAST the factors to fewer decimals"
                    )));
                }
            }
        }
        if !self.hidden.is_empty() {
            let shown: Vec<Expr> = schema
                .iter_names()
                .filter(|n| !self.hidden.iter().any(|h| h == n.as_str()))
                .map(|n| col(n.clone()))
                .collect();
            plan = plan.select(shown);
        }
        Ok(plan)
    }

    /// Runs the query with the streaming engine.
    pub fn collect(&self, plan: LazyFrame) -> Result<DataFrame> {
        no_panic(|| plan.collect_with_engine(self.engine)).map_err(|e| self.explain(e))
    }

    /// Streams the result into a Parquet file without holding it.
    pub fn sink_parquet(&self, plan: LazyFrame, path: &Path) -> Result<()> {
        no_panic(|| {
            plan.sink_parquet(
                SinkTarget::Path(Arc::new(path.to_path_buf())),
                ParquetWriteOptions::default(),
                None,
                SinkOptions::default(),
            )
            .and_then(|sink| sink.collect_with_engine(self.engine))
        })
        .map_err(|e| self.explain(e))?;
        Ok(())
    }

    /// Polars' error in one short line: the first line of its message,
    /// without the plan and without the spill folder's paths.
    fn short_reason(&self, e: &PolarsError) -> String {
        let message = e.to_string();
        let mut line = message
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no reason given")
            .to_string();
        if let Some(at) = line.find("Resolved plan") {
            line.truncate(at);
        }
        if let Some(spill) = &self.spill {
            line = line.replace(&spill.0.display().to_string(), "<temporary folder>");
        }
        if line.contains(&std::env::temp_dir().display().to_string()) {
            line = "an error in the query's plan".into();
        }
        let mut line = line.trim().trim_end_matches(';').to_string();
        if line.chars().count() > 300 {
            line = line.chars().take(300).collect::<String>() + "…";
        }
        line
    }

    /// A column the query names that is none of the contract's, from
    /// Polars' column error; None when the missing name is one of them (a
    /// column used where Polars cannot see it, not a private one).
    fn missing_column(&self, e: &PolarsError) -> Option<String> {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default();
        let unknown_column = matches!(e, PolarsError::ColumnNotFound(_))
            || first.contains("unable to find column")
            || first.contains("not found");
        if !unknown_column || first.contains("relation") {
            return None;
        }
        let name = match first.split('"').nth(1) {
            Some(quoted) => quoted.to_string(),
            None => first
                .rsplit(": ")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let known = all_columns().contains(&name)
            || name.starts_with(guard::HIDDEN_PREFIX)
            || self
                .sql
                .to_lowercase()
                .contains(&format!(" as {}", name.to_lowercase()));
        (!known).then_some(name)
    }

    /// A usage error: a column outside the contract lists the columns that
    /// exist; anything else Polars cannot plan or run says so briefly.
    fn explain(&self, e: PolarsError) -> Error {
        let reason = self.short_reason(&e);
        if reason.contains("relation") {
            return Error::usage(format!(
                "Polars SQL cannot run this query: {reason}; the tables are {}",
                table_names().join(", ")
            ));
        }
        if let Some(name) = self.missing_column(&e) {
            let columns: Vec<String> = self
                .tables
                .iter()
                .filter_map(|t| {
                    table_schema(t).map(|s| {
                        let names: Vec<&str> = s.iter_names().map(|n| n.as_str()).collect();
                        format!("{t}({})", names.join(", "))
                    })
                })
                .collect();
            return Error::usage(format!(
                "the query names a column that does not exist ({name:?}); only the contract's columns are extracted: {}",
                columns.join("; ")
            ));
        }
        Error::usage(format!("Polars SQL cannot run this query: {reason}"))
    }
}

/// A result value as JSON: exact decimals as strings, dates and times as
/// ISO 8601 text.
fn json_value(value: AnyValue) -> Result<serde_json::Value> {
    use serde_json::Value;
    Ok(match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::Int8(v) => v.into(),
        AnyValue::Int16(v) => v.into(),
        AnyValue::Int32(v) => v.into(),
        AnyValue::Int64(v) => v.into(),
        AnyValue::UInt8(v) => v.into(),
        AnyValue::UInt16(v) => v.into(),
        AnyValue::UInt32(v) => v.into(),
        AnyValue::UInt64(v) => v.into(),
        AnyValue::Float32(v) => serde_json::Number::from_f64(f64::from(v))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Float64(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        other => match text_value(other)? {
            Some(text) => Value::String(text),
            None => Value::Null,
        },
    })
}

/// A decimal's exact text from its integer and scale, with at least 6
/// decimals (more only when it has them), as `money::exact_text` writes
/// it, for every scale Polars holds (rust_decimal stops at 28).
fn decimal_text(value: i128, scale: usize) -> String {
    let digits = value.unsigned_abs().to_string();
    let (whole, fraction) = if digits.len() > scale {
        let (w, f) = digits.split_at(digits.len() - scale);
        (w.to_string(), f.to_string())
    } else {
        ("0".to_string(), format!("{digits:0>scale$}"))
    };
    let mut fraction = fraction.trim_end_matches('0').to_string();
    while fraction.len() < crate::money::SCALE as usize {
        fraction.push('0');
    }
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// A date as `YYYY-MM-DD`; a date beyond the years chrono can print
/// (±262,142) is a usage error, never a panic.
fn date_text(days: i64) -> Result<String> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch");
    let date = if days >= 0 {
        epoch.checked_add_days(chrono::Days::new(days as u64))
    } else {
        epoch.checked_sub_days(chrono::Days::new(days.unsigned_abs()))
    };
    date.map(|d| d.to_string()).ok_or_else(out_of_range)
}

/// A time as UTC RFC 3339 with microseconds; one beyond chrono's years is
/// a usage error, never a panic or 1970.
fn datetime_text(value: i64, unit: TimeUnit) -> Result<String> {
    let micros = match unit {
        TimeUnit::Nanoseconds => Some(value.div_euclid(1000)),
        TimeUnit::Microseconds => Some(value),
        TimeUnit::Milliseconds => value.checked_mul(1000),
    };
    micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .ok_or_else(out_of_range)
}

fn out_of_range() -> Error {
    Error::usage(
        "a date or time in the result is outside the years that can be printed (about ±262,000); filter or convert it in the query",
    )
}

/// A result value as text: exact decimals, ISO 8601 dates and UTC times.
fn text_value(value: AnyValue) -> Result<Option<String>> {
    Ok(Some(match value {
        AnyValue::Null => return Ok(None),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Decimal(v, scale) => decimal_text(v, scale),
        AnyValue::Date(days) => date_text(i64::from(days))?,
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            datetime_text(v, unit)?
        }
        other => other.to_string(),
    }))
}

/// An array of row objects named by the query's columns.
pub fn json(df: &DataFrame) -> Result<Vec<u8>> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    // Converted first, so a value that cannot be printed fails before any
    // output.
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        let values = row
            .0
            .into_iter()
            .map(json_value)
            .collect::<Result<Vec<_>>>()?;
        rows.push(serde_json::Value::Object(
            names.iter().cloned().zip(values).collect(),
        ));
    }
    Ok(crate::output::json_array(rows.into_iter()))
}

/// Refuses (exit 2) what the CSV writer cannot print exactly: decimals
/// beyond 28 digits or 28 decimals, dates and times beyond chrono's years.
fn check_csv_printable(df: &DataFrame) -> Result<()> {
    for c in df.get_columns() {
        let series = c.as_materialized_series();
        match c.dtype() {
            DataType::Decimal(_, _) if crate::money::decimals(c).is_err() => {
                return Err(Error::usage(format!(
                    "column {}: a value has more than 28 digits or 28 decimals, more than CSV prints exactly; use --format json or parquet, or round it in the query",
                    c.name()
                )));
            }
            DataType::Date => {
                let days = series.date()?.physical();
                for v in [days.min(), days.max()].into_iter().flatten() {
                    date_text(i64::from(v))?;
                }
            }
            DataType::Datetime(unit, _) => {
                let values = series.datetime()?.physical();
                for v in [values.min(), values.max()].into_iter().flatten() {
                    datetime_text(v, *unit)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// CSV with the contract's rules, money with every digit it has.
pub fn csv(df: &DataFrame) -> Result<Vec<u8>> {
    check_csv_printable(df)?;
    crate::output::csv_bytes(df, crate::output::MoneyText::Exact)
}

/// For people: an aligned table and the row count.
pub fn table(df: &DataFrame) -> Result<Vec<u8>> {
    use comfy_table::presets::UTF8_BORDERS_ONLY;
    use comfy_table::{ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            df.get_column_names()
                .iter()
                .map(|n| crate::text::printable(n.as_str()).into_owned()),
        );
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        // Stored text (business names, error types) reaches a terminal:
        // control characters are shown, never sent.
        let cells = row
            .0
            .into_iter()
            .map(|v| {
                text_value(v)
                    .map(Option::unwrap_or_default)
                    .map(|t| crate::text::printable(&t).into_owned())
            })
            .collect::<Result<Vec<_>>>()?;
        table.add_row(cells);
    }
    Ok(format!("{table}\n({} row(s))\n", df.height()).into_bytes())
}
