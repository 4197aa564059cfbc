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
use crate::summaries::{Summaries, SummaryTable};
use crate::window::Window;

/// Days the pipeline reads at a time: as `run` (measured on 90 days of 5 M
/// calls: 150 MB peak a day at a time, 300 MB a week at a time).
const CHUNK_DAYS: u32 = 1;

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
        _ => SummaryTable::ALL
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.schema()),
    }
}

/// Every table a query may name.
pub fn table_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SOURCE_TABLES.to_vec();
    names.extend(SummaryTable::ALL.iter().map(|t| t.name()));
    names
}

/// The tables a query names: a word match on its text, so a table is read
/// only when the query may need it.
pub fn named_tables(sql: &str) -> Vec<&'static str> {
    let words: std::collections::HashSet<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_ascii_lowercase)
        .collect();
    table_names()
        .into_iter()
        .filter(|t| words.contains(*t))
        .collect()
}

/// A private folder for the spilled chunks, removed when dropped.
struct SpillDir(PathBuf);

impl SpillDir {
    fn create() -> Result<SpillDir> {
        let path = std::env::temp_dir().join(format!("callrollup-query-{}", uuid::Uuid::new_v4()));
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
    _spill: Option<SpillDir>,
}

/// Reads the tables the query names and registers them.
pub fn prepare(sql: &str, input: QueryInput) -> Result<Prepared> {
    let tables = named_tables(sql);
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
    let summary_tables: Vec<SummaryTable> = SummaryTable::ALL
        .into_iter()
        .filter(|t| wants(t.name()))
        .collect();
    if !summary_tables.is_empty() {
        let summaries = input.summaries.ok_or_else(|| {
            Error::usage(
                "the summary tables are read from the target database or report files: pass --database-url / --target-url or --reports DIR",
            )
        })?;
        for table in summary_tables {
            let df = summaries.table(table, input.window.from, input.window.to, input.tenants)?;
            context.register(table.name(), df.lazy());
        }
    }
    Ok(Prepared {
        context,
        tables,
        _spill: spill,
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

impl Prepared {
    /// The query's plan; a SQL or column error is a usage error (exit 2).
    pub fn plan(&mut self, sql: &str) -> Result<LazyFrame> {
        let plan = self.context.execute(sql).map_err(|e| self.explain(e))?;
        // Resolving the schema finds unknown columns before any work.
        let mut checked = plan.clone();
        checked.collect_schema().map_err(|e| self.explain(e))?;
        Ok(plan)
    }

    /// Runs the query with the streaming engine.
    pub fn collect(&self, plan: LazyFrame) -> Result<DataFrame> {
        plan.collect_with_engine(Engine::Streaming)
            .map_err(|e| self.explain(e))
    }

    /// Streams the result into a Parquet file without holding it.
    pub fn sink_parquet(&self, plan: LazyFrame, path: &Path) -> Result<()> {
        plan.sink_parquet(
            SinkTarget::Path(Arc::new(path.to_path_buf())),
            ParquetWriteOptions::default(),
            None,
            SinkOptions::default(),
        )
        .and_then(|sink| sink.collect_with_engine(Engine::Streaming))
        .map_err(|e| self.explain(e))?;
        Ok(())
    }

    /// Polars' own message, and for a column that does not exist, the
    /// columns that do.
    fn explain(&self, e: PolarsError) -> Error {
        let message = e.to_string().replace('\n', " ");
        if message.contains("relation") {
            return Error::usage(format!(
                "the query failed: {message}; the tables are {}",
                table_names().join(", ")
            ));
        }
        let unknown_column = matches!(e, PolarsError::ColumnNotFound(_))
            || message.contains("not found")
            || message.contains("unable to find column");
        if unknown_column {
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
                "the query names a column that does not exist ({message}); only the contract's columns are extracted: {}",
                columns.join("; ")
            ));
        }
        Error::usage(format!("the query failed: {message}"))
    }
}

/// A result value as JSON: exact decimals as strings, dates and times as
/// ISO 8601 text.
fn json_value(value: AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
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
        other => match text_value(other) {
            Some(text) => Value::String(text),
            None => Value::Null,
        },
    }
}

/// A result value as text: exact decimals, ISO 8601 dates and UTC times.
fn text_value(value: AnyValue) -> Option<String> {
    Some(match value {
        AnyValue::Null => return None,
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Decimal(v, scale) => {
            crate::money::exact_text(rust_decimal::Decimal::from_i128_with_scale(v, scale as u32))
        }
        AnyValue::Date(days) => crate::window::day_of_epoch(i64::from(days)).to_string(),
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            let micros = match unit {
                TimeUnit::Nanoseconds => v / 1000,
                TimeUnit::Microseconds => v,
                TimeUnit::Milliseconds => v * 1000,
            };
            chrono::DateTime::from_timestamp_micros(micros)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        }
        other => other.to_string(),
    })
}

/// An array of row objects named by the query's columns.
pub fn json(df: &DataFrame) -> Result<Vec<u8>> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let rows = (0..df.height()).filter_map(|i| df.get(i)).map(|row| {
        serde_json::Value::Object(
            names
                .iter()
                .cloned()
                .zip(row.into_iter().map(json_value))
                .collect(),
        )
    });
    Ok(crate::sink::files::json_array(rows))
}

/// CSV with the contract's rules, money with every digit it has.
pub fn csv(df: &DataFrame) -> Result<Vec<u8>> {
    crate::sink::files::csv_bytes(df, crate::sink::files::MoneyText::Exact)
}

/// For people: an aligned table and the row count.
pub fn table(df: &DataFrame) -> Result<Vec<u8>> {
    use comfy_table::presets::UTF8_BORDERS_ONLY;
    use comfy_table::{ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(df.get_column_names().iter().map(|n| n.as_str()));
    for i in 0..df.height() {
        let row = df.get_row(i)?;
        table.add_row(row.0.into_iter().map(|v| text_value(v).unwrap_or_default()));
    }
    Ok(format!("{table}\n({} row(s))\n", df.height()).into_bytes())
}
