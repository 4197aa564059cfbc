//! Reading the platform tables from PostgreSQL: the schema-drift check, the
//! window's frames through parallel binary COPY streams, and Postgres' own
//! totals, all inside one exported snapshot.

use chrono::{DateTime, SecondsFormat, Utc};
use polars::prelude::*;
use postgres::Client;

use super::errored::{ErrorTimes, ErrorTimesBuilder};
use super::pgcopy::{self, FieldKind};
use crate::db::{CopyClient, DbUrl};
use crate::error::{Error, Result};
use crate::frames::{
    calls_schema, conform, errors_schema, tenants_schema, SourceFrames, SourceTotals, CALL_COLUMNS,
    ERROR_COLUMNS, OPTIONAL_SOURCE_COLUMNS, SOURCE_TABLES, TENANT_COLUMNS,
};
use crate::rollup::accumulate::fingerprint;
use crate::selection::TenantSelection;
use crate::sql;

/// Pages `[from, to)` of a table (to: None, the rest of it).
pub type PageSlice = (u64, Option<u64>);

/// What the drift check learned about optional columns.
#[derive(Debug, Clone, Copy)]
pub struct SourceShape {
    pub has_duration_seconds: bool,
}

/// COPY streams a chunk is read with when a window is read chunk by chunk
/// (a one-pass read uses `read_streams`). With Postgres on the same 2
/// cores, one stream measured fastest (13.6 s against 14.6 s with two on a 90-day
/// window: the cores are already full with the backend, the decoder, the
/// rollup and the write-back); a database on its own host gains from more.
pub const DEFAULT_STREAMS: u16 = 1;

/// Rows read for one chunk that the next chunk's range also covers: read
/// once, kept for the next chunk instead of read again.
struct Carry {
    /// The rows are those with `from <= created_at < until`.
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    calls: DataFrame,
    errors: DataFrame,
}

/// A connection to the platform database: read-only, with a statement
/// timeout, inside a repeatable-read transaction whose snapshot the
/// parallel readers share, so every chunk and stream sees the same rows.
pub struct PostgresSource {
    url: DbUrl,
    schema: String,
    statement_timeout_secs: u64,
    client: Client,
    snapshot: String,
    streams: usize,
    /// Opened on first use, each inside the same snapshot.
    readers: Vec<CopyClient>,
    tenants: Option<DataFrame>,
    /// Fingerprints of the call_ids that errors logged since the given
    /// instant carry, each with the latest time one was logged (Unix µs),
    /// kept across the chunks of one run: the earliest chunk reads them
    /// once, and any later chunk's calls are found in that superset.
    errored: Option<(DateTime<Utc>, std::sync::Arc<ErrorTimes>)>,
    carry: Option<Carry>,
    verification: Option<std::thread::JoinHandle<Result<SourceTotals>>>,
}

impl PostgresSource {
    pub fn connect(url: &DbUrl, schema: &str, statement_timeout_secs: u64) -> Result<Self> {
        let mut client = url.connect("callrollup-source")?;
        client.batch_execute(&session_setup(statement_timeout_secs))?;
        client.batch_execute(sql::SOURCE_SNAPSHOT_EXPORT)?;
        let snapshot: String = client.query_one(sql::SOURCE_SNAPSHOT_ID, &[])?.get(0);
        Ok(PostgresSource {
            url: url.clone(),
            schema: schema.to_string(),
            statement_timeout_secs,
            client,
            snapshot,
            streams: usize::from(DEFAULT_STREAMS),
            readers: Vec::new(),
            tenants: None,
            errored: None,
            carry: None,
            verification: None,
        })
    }

    /// What this source is, for the ledger: the URL without its password
    /// and the schema.
    pub fn describe(&self) -> String {
        format!("{} (schema {})", self.url, self.schema)
    }

    /// How many COPY streams `--streams` asked for.
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// Streams a large read in storage order is split over: Postgres
    /// scans pages on one core per stream while this process decodes (on
    /// the 5 M-call bench window, 2 streams on 2 cores: see
    /// bench/HISTORY.md), or `--streams` if more.
    pub fn read_streams(&self) -> usize {
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .clamp(1, 4);
        cores.max(self.streams).max(1)
    }

    /// How many COPY streams read a range at once (at least 1).
    pub fn set_streams(&mut self, streams: usize) {
        self.streams = streams.max(1);
    }

    /// Stops with the first missing or mistyped column (docs/CONTRACT.md §1).
    pub fn check_schema(&mut self) -> Result<SourceShape> {
        let rows = self.client.query(sql::SOURCE_COLUMNS, &[&self.schema])?;
        let mut has_duration_seconds = false;
        let columns = SOURCE_TABLES.iter().flat_map(|(table, columns)| {
            columns.iter().map(move |(column, kind)| {
                let required = !OPTIONAL_SOURCE_COLUMNS.contains(&(*table, *column));
                (table, column, kind.source_types(), required)
            })
        });
        for (table, column, accepted, required) in columns {
            let found = found_row(&rows, table, column);
            let problem = match found {
                None => Some(format!(
                    "column {column} is missing (or not visible to this role)"
                )),
                Some(r) if !r.get::<_, bool>("can_select") => {
                    Some(format!("column {column} is not readable by this role"))
                }
                Some(r) => {
                    let ty: String = r.get("data_type");
                    (!accepted.contains(&ty.as_str())).then(|| {
                        format!(
                            "column {column} has type {ty}, expected {}",
                            accepted.join(" or ")
                        )
                    })
                }
            };
            match problem {
                Some(problem) if required => {
                    return Err(Error::SchemaDrift {
                        table: format!("{}.{table}", self.schema),
                        problem,
                    })
                }
                Some(_) => {}
                None if *column == "duration_seconds" => has_duration_seconds = true,
                None => {}
            }
        }
        Ok(SourceShape {
            has_duration_seconds,
        })
    }

    /// Reads the calls and errors of a UTC range with parallel COPY
    /// streams, each on its own slice of `created_at` (index-served).
    fn read_range(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
    ) -> Result<(DataFrame, DataFrame)> {
        self.open_readers()?;
        let slices = split_range(range, self.streams);
        let queries: Vec<(String, String)> = slices
            .iter()
            .map(|&slice| {
                (
                    self.rows_query("call_logs", slice, selection, shape, None),
                    self.rows_query("system_errors", slice, selection, shape, None),
                )
            })
            .collect();
        let url = &self.url;
        let parts: Vec<Result<(DataFrame, DataFrame)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .readers
                .iter_mut()
                .zip(&queries)
                .map(|(reader, (calls, errors))| {
                    scope.spawn(move || -> Result<(DataFrame, DataFrame)> {
                        Ok((
                            copy_frame(reader, url, "call_logs", calls, CALL_COLUMNS)?,
                            copy_frame(reader, url, "system_errors", errors, ERROR_COLUMNS)?,
                        ))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a COPY reader panicked"))
                .collect()
        });
        let mut calls: Option<DataFrame> = None;
        let mut errors: Option<DataFrame> = None;
        for part in parts {
            let (c, e) = part?;
            match (&mut calls, &mut errors) {
                (Some(calls), Some(errors)) => {
                    calls.vstack_mut(&c)?;
                    errors.vstack_mut(&e)?;
                }
                _ => {
                    calls = Some(c);
                    errors = Some(e);
                }
            }
        }
        let calls = calls.expect("at least one reader");
        let errors = errors.expect("at least one reader");
        Ok((calls, errors))
    }

    /// The declared columns of `table` (call_logs or system_errors) over
    /// the UTC range `range`: `queries/<table>.sql` rendered.
    fn rows_query(
        &self,
        table: &str,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
        pages: Option<PageSlice>,
    ) -> String {
        let alias = if table == "call_logs" { "c" } else { "e" };
        // Page numbers the engine computed, never user text.
        let page_range = match pages {
            None => String::new(),
            Some((from, None)) => format!("AND {alias}.ctid >= '({from},0)'::tid"),
            Some((from, Some(to))) => {
                format!("AND {alias}.ctid >= '({from},0)'::tid AND {alias}.ctid < '({to},0)'::tid")
            }
        };
        let from_utc = timestamp_literal(range.0);
        let to_utc = end_literal(range.1);
        let duration = if shape.has_duration_seconds {
            "c.duration_seconds::bigint"
        } else {
            "NULL::bigint"
        };
        match table {
            "call_logs" => sql::render(
                sql::CALL_LOGS,
                &[
                    ("schema", &self.schema),
                    ("from_utc", &from_utc),
                    ("to_utc", &to_utc),
                    ("duration_seconds", duration),
                    ("tenant_filter", &selection.sql_filter("c.tenant_id")),
                    ("page_range", &page_range),
                ],
            ),
            _ => sql::render(
                sql::SYSTEM_ERRORS,
                &[
                    ("schema", &self.schema),
                    ("from_utc", &from_utc),
                    ("until", &until("e", range.1)),
                    ("tenant_filter", &selection.sql_filter("e.tenant_id")),
                    ("page_range", &page_range),
                ],
            ),
        }
    }

    /// Some declared columns of `table` (call_logs or system_errors) over
    /// a UTC range, inside the snapshot, each field handed to one of
    /// `each` as it is decoded (`pgcopy::for_each_field`): `query`'s read
    /// and the one-pass read (`source::accumulate`).
    /// One statement over the whole range lets Postgres read in storage
    /// order (a sequential scan) when the range covers most of the table,
    /// and an index range when it does not. A range that covers most of a
    /// table of some size is read as that many slices of its pages (TID
    /// range scans), each on its own stream and thread, each handed to its
    /// own `each`; otherwise only the first `each` is used. Returns how
    /// many streams read.
    pub fn for_each_field<F>(
        &mut self,
        table: &'static str,
        columns: &[&str],
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
        each: Vec<F>,
    ) -> Result<usize>
    where
        F: FnMut(usize, Option<&[u8]>) -> std::result::Result<(), pgcopy::DecodeError> + Send,
    {
        let slices = match selection.is_everyone() {
            true => self.page_slices(table, range, each.len())?,
            // A selection's rows lie all over the table: its index serves.
            false => vec![None],
        };
        let statements: Vec<String> = slices
            .iter()
            .map(|pages| {
                self.copy_statement(table, columns, range, selection, shape, *pages, false)
            })
            .collect();
        self.stream_fields(table, columns.len(), &statements, false, each)
    }

    /// `for_each_field` over one UTC range per stream, each stream's rows
    /// in `created_at` order (the `created_at` index, a plain index scan:
    /// on an append-only table its heap pages come in storage order, 1.1x
    /// the cost of a TID range scan, bench/HISTORY.md), so that a stream
    /// knows a day complete once its rows have passed the day's end.
    /// `ordered: false` reads each range in any order (the errors, read
    /// whole before the calls). Returns how many streams read.
    #[allow(clippy::too_many_arguments)]
    pub fn for_each_field_by_range<F>(
        &mut self,
        table: &'static str,
        columns: &[&str],
        ranges: &[(DateTime<Utc>, DateTime<Utc>)],
        selection: &TenantSelection,
        shape: SourceShape,
        ordered: bool,
        each: Vec<F>,
    ) -> Result<usize>
    where
        F: FnMut(usize, Option<&[u8]>) -> std::result::Result<(), pgcopy::DecodeError> + Send,
    {
        let statements: Vec<String> = ranges
            .iter()
            .map(|range| {
                self.copy_statement(table, columns, *range, selection, shape, None, ordered)
            })
            .collect();
        self.stream_fields(table, columns.len(), &statements, ordered, each)
    }

    /// Whether `table`'s rows lie in `created_at` order on its pages (the
    /// planner's correlation, from the last ANALYZE, at least 0.9 either
    /// way): then a read in that order costs about what a scan in storage
    /// order does; otherwise each row would be a random page.
    pub fn stored_in_created_at_order(&mut self, table: &str) -> Result<bool> {
        // Statistics that cannot be read mean storage order: never wrong,
        // at worst slower.
        let correlation: Option<f32> = self
            .client
            .query_opt(sql::SOURCE_CREATED_AT_CORRELATION, &[&self.schema, &table])
            .ok()
            .flatten()
            .and_then(|row| row.get(0));
        Ok(correlation.is_some_and(|c| c.abs() >= 0.9))
    }

    /// One binary COPY statement of `columns` of `table` over `range`.
    #[allow(clippy::too_many_arguments)]
    fn copy_statement(
        &self,
        table: &str,
        columns: &[&str],
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
        pages: Option<PageSlice>,
        ordered: bool,
    ) -> String {
        let rows = self.rows_query(table, range, selection, shape, pages);
        // The names are the declared columns' (constants), never user text.
        let text = sql::render(
            sql::QUERY_ROWS,
            &[
                ("columns", &columns.join(", ")),
                ("rows", &rows),
                ("order", if ordered { "ORDER BY r.created_at" } else { "" }),
            ],
        );
        sql::render(sql::COPY_OUT, &[("query", &text)])
    }

    /// Runs each statement on a reader of its own, on a thread of its
    /// own, handing its fields to its `each`; the first stream that fails
    /// stops the others. Returns how many streams read.
    fn stream_fields<F>(
        &mut self,
        table: &'static str,
        width: usize,
        statements: &[String],
        ordered: bool,
        mut each: Vec<F>,
    ) -> Result<usize>
    where
        F: FnMut(usize, Option<&[u8]>) -> std::result::Result<(), pgcopy::DecodeError> + Send,
    {
        self.open_readers_for(statements.len())?;
        let url = &self.url;
        // Set by the first stream that fails: the others stop at their next
        // row instead of reading their slice to its end.
        let failed = std::sync::atomic::AtomicBool::new(false);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let streams: Vec<_> = self
                .readers
                .iter_mut()
                .zip(statements)
                .zip(each.iter_mut())
                .map(|((reader, statement), each)| {
                    let failed = &failed;
                    scope.spawn(move || -> Result<()> {
                        use std::sync::atomic::Ordering::Relaxed;
                        let mut stopped_by_another = false;
                        // The readers' session keeps the bitmap plans of the
                        // chunked read; an ordered range wants the index's order.
                        let plan = match ordered {
                            true => reader.batch_execute(sql::SOURCE_READER_IN_ORDER),
                            false => Ok(()),
                        };
                        let read =
                            plan.and_then(|()| reader.copy_out(statement))
                                .and_then(|stream| {
                                    pgcopy::for_each_field(stream, width, |i, raw| {
                                        if i == 0 && failed.load(Relaxed) {
                                            stopped_by_another = true;
                                            return Err(pgcopy::DecodeError::Stopped);
                                        }
                                        each(i, raw)
                                    })
                                    .map_err(|e| decode_error(url, table, e))
                                });
                        let read = match ordered {
                            true => read
                                .and_then(|()| reader.batch_execute(sql::SOURCE_READER_ANY_ORDER)),
                            false => read,
                        };
                        match read {
                            // The stream that failed reports why.
                            Err(_) if stopped_by_another => Ok(()),
                            Err(e) => {
                                failed.store(true, Relaxed);
                                Err(e)
                            }
                            Ok(()) => Ok(()),
                        }
                    })
                })
                .collect();
            streams
                .into_iter()
                .map(|s| {
                    s.join().unwrap_or_else(|_| {
                        Err(Error::RunFailed(
                            "a COPY reader stopped on an internal error; report this as a bug"
                                .into(),
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().collect::<Result<()>>()?;
        Ok(statements.len())
    }

    /// The page slices `table` is read in over `range` with up to
    /// `parts` streams: one whole read (None) unless the range covers most
    /// of the table's time span, the table has some size and the server
    /// has TID range scans (PostgreSQL 14); the last slice is open-ended,
    /// so pages added since the size was taken are still read.
    fn page_slices(
        &mut self,
        table: &str,
        range: (DateTime<Utc>, DateTime<Utc>),
        parts: usize,
    ) -> Result<Vec<Option<PageSlice>>> {
        /// Below this many pages (8 MB) one stream is as fast.
        const SPLIT_PAGES: i64 = 1024;
        if parts < 2 {
            return Ok(vec![None]);
        }
        let text = sql::render(
            sql::QUERY_TABLE_PAGES,
            &[("schema", &self.schema), ("table", table)],
        );
        let row = self.client.query_one(&text, &[])?;
        let pages: i64 = row.get("pages");
        let tid_range_scans: bool = row.get("tid_range_scans");
        let table_rows: f64 = row.get("table_rows");
        let estimate = sql::render(
            sql::QUERY_TABLE_RANGE,
            &[
                ("schema", &self.schema),
                ("table", table),
                ("from_utc", &timestamp_literal(range.0)),
                ("to_utc", &end_literal(range.1)),
            ],
        );
        // As text: the plan's column is `json`, which the driver's types
        // here do not read.
        let plan_text = self
            .client
            .simple_query(&estimate)?
            .into_iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default();
        // A plan that cannot be read (another server's EXPLAIN) means one
        // whole read: never wrong, at worst slower.
        let plan: serde_json::Value = serde_json::from_str(&plan_text).unwrap_or_default();
        let range_rows = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
        // More than half the table: a scan of its pages beats the index.
        let covered = table_rows > 0.0 && range_rows * 2.0 > table_rows;
        if !(tid_range_scans && covered && pages >= SPLIT_PAGES) {
            return Ok(vec![None]);
        }
        // Page numbers are u32 in a TID.
        let pages = pages.min(i64::from(u32::MAX));
        let parts = parts as i64;
        Ok((0..parts)
            .map(|i| {
                let from = pages * i / parts;
                let to = (i + 1 < parts).then(|| pages * (i + 1) / parts);
                Some((from as u64, to.map(|t| t as u64)))
            })
            .collect())
    }

    /// Starts counting and summing `range` (the union of the ranges the
    /// run will read) in Postgres, on a connection of its own inside the
    /// same snapshot, while the run reads and rolls up; `verify` collects
    /// the result (about 2 s of one backend on 5 million calls, 0.5 s of
    /// the run's wall time).
    pub fn start_verification(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
    ) -> Result<()> {
        // Already counting (a one-pass read that gave way to the chunked
        // one counts the same range and selection).
        if self.verification.is_some() {
            return Ok(());
        }
        let mut client = self.url.connect("callrollup-source")?;
        client.batch_execute(&session_setup(self.statement_timeout_secs))?;
        client.batch_execute(sql::SOURCE_VERIFY_SESSION)?;
        client.batch_execute(&sql::render(
            sql::SOURCE_SNAPSHOT_JOIN,
            &[("snapshot", &self.snapshot)],
        ))?;
        let schema = self.schema.clone();
        let selection = selection.clone();
        self.verification = Some(std::thread::spawn(move || {
            totals_of(&mut client, &schema, range, &selection)
        }));
        Ok(())
    }

    /// Proves the rows read hold what Postgres itself counts and sums for
    /// the range given to `start_verification`: in the same snapshot, so
    /// any difference is a decoding fault, never a concurrent write.
    pub fn verify(&mut self, read: &SourceTotals) -> Result<()> {
        let Some(verification) = self.verification.take() else {
            return Err(Error::RunFailed(
                "internal: verify without start_verification".into(),
            ));
        };
        let expected = verification
            .join()
            .map_err(|_| Error::RunFailed("the source totals query panicked".into()))??;
        if read.matches(&expected) {
            return Ok(());
        }
        Err(Error::Reconciliation(format!(
            "read {} calls / {} errors / total {} but Postgres counts {} / {} / {} for the same range in the same snapshot; report this as a bug",
            read.calls,
            read.errors,
            read.total_cost_usd.normalize(),
            expected.calls,
            expected.errors,
            expected.total_cost_usd.normalize()
        )))
    }

    /// Closes the readers: a COPY stopped part-way (a one-pass read over
    /// its budget, a statement timeout) would first have to be drained to
    /// its end; new readers join the same snapshot.
    pub fn close_readers(&mut self) {
        self.readers.clear();
    }

    /// Readers that share this session's snapshot, one per stream.
    fn open_readers(&mut self) -> Result<()> {
        self.open_readers_for(self.streams)
    }

    /// At least `count` readers in the snapshot (`query`'s page slices
    /// may want more than `--streams`).
    fn open_readers_for(&mut self, count: usize) -> Result<()> {
        while self.readers.len() < count {
            let mut reader = self.url.connect_copy("callrollup-source")?;
            reader.batch_execute(&session_setup(self.statement_timeout_secs))?;
            reader.batch_execute(sql::SOURCE_READER_SESSION)?;
            reader.batch_execute(&sql::render(
                sql::SOURCE_SNAPSHOT_JOIN,
                &[("snapshot", &self.snapshot)],
            ))?;
            self.readers.push(reader);
        }
        Ok(())
    }

    /// Checks that this database puts the window's day boundaries where
    /// the engine does, for every zone the selected tenants use.
    pub fn check_zones(
        &mut self,
        selection: &TenantSelection,
        window: &crate::window::Window,
    ) -> Result<()> {
        let tenants = self.tenants(selection)?;
        let declared: Vec<Option<&str>> = tenants.column("timezone")?.str()?.into_iter().collect();
        crate::zone_check::check(&mut self.client, &declared, window)
    }

    /// The selected tenants (read once).
    pub fn tenants(&mut self, selection: &TenantSelection) -> Result<DataFrame> {
        if let Some(tenants) = &self.tenants {
            return Ok(tenants.clone());
        }
        let text = sql::render(
            sql::TENANTS,
            &[
                ("schema", &self.schema),
                ("tenant_filter", &selection.sql_filter("t.tenant_id")),
            ],
        );
        self.open_readers()?;
        let tenants = conform(
            copy_frame(
                &mut self.readers[0],
                &self.url,
                "tenants",
                &text,
                TENANT_COLUMNS,
            )?,
            &tenants_schema(),
        )?;
        self.tenants = Some(tenants.clone());
        Ok(tenants)
    }

    /// The window's frames for the UTC range `range`. Rows a previous
    /// call kept (see `keep_from`) are not read again. With `keep_from`,
    /// the rows from that instant on are kept for the next call, whose
    /// range starts there. The totals returned are those of the rows read
    /// by this call; `verify` checks them against Postgres.
    pub fn extract(
        &mut self,
        range: (DateTime<Utc>, DateTime<Utc>),
        selection: &TenantSelection,
        shape: SourceShape,
        keep_from: Option<DateTime<Utc>>,
    ) -> Result<(SourceFrames, SourceTotals)> {
        let (kept, read_from) = match self.carry.take() {
            Some(c) if c.from <= range.0 && range.0 < c.until && c.until <= range.1 => {
                let from = c.until;
                (
                    Some((since(&c.calls, range.0)?, since(&c.errors, range.0)?)),
                    from,
                )
            }
            _ => (None, range.0),
        };
        let tenants = self.tenants(selection)?;
        let (mut calls, errors) = self.read_range((read_from, range.1), selection, shape)?;
        let errored = errored_flags(
            calls.column("call_id")?.str()?,
            calls.column("created_at")?.datetime()?,
            &*self.errored_ids(range.0)?,
        );
        calls.with_column(errored)?;
        let calls = conform(calls, &calls_schema())?;
        let errors = conform(errors, &errors_schema())?;
        let read = SourceTotals::of(&calls, &errors)?;
        let (calls, errors) = match kept {
            Some((mut kept_calls, mut kept_errors)) => {
                kept_calls.vstack_mut(&calls)?;
                kept_errors.vstack_mut(&errors)?;
                (kept_calls, kept_errors)
            }
            None => (calls, errors),
        };
        if let Some(from) = keep_from.filter(|k| *k < range.1) {
            self.carry = Some(Carry {
                from,
                until: range.1,
                calls: since(&calls, from)?,
                errors: since(&errors, from)?,
            });
        }
        Ok((
            SourceFrames {
                tenants,
                calls,
                errors,
            },
            read,
        ))
    }

    /// Names the source without secrets: a hash of server, port,
    /// database, version and schema.
    pub fn fingerprint(&mut self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let row = self.client.query_one(sql::SOURCE_FINGERPRINT, &[])?;
        let text = format!(
            "{}:{}/{} {} schema={}",
            row.get::<_, String>("host"),
            row.get::<_, i32>("port"),
            row.get::<_, String>("database"),
            row.get::<_, String>("version"),
            self.schema
        );
        let digest = Sha256::digest(text.as_bytes());
        Ok(format!(
            "postgres:{}",
            digest
                .iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    /// The call_ids that errors carry, logged from a day before `since`
    /// on, with the latest time each was logged; read once, unless only a
    /// set from a later instant is held.
    pub(crate) fn errored_ids(
        &mut self,
        since: DateTime<Utc>,
    ) -> Result<std::sync::Arc<ErrorTimes>> {
        if let Some((cached, held)) = &self.errored {
            if *cached <= since {
                return Ok(held.clone());
            }
        }
        let text = sql::render(
            sql::ERRORED_CALLS,
            &[
                ("schema", &self.schema),
                ("from_utc", &timestamp_literal(since)),
            ],
        );
        // Streamed straight into fingerprints: the ids themselves are
        // never held.
        let mut ids = ErrorTimesBuilder::default();
        let statement = sql::render(sql::COPY_OUT, &[("query", &text)]);
        // On a reader: the same snapshot, and the batched COPY client.
        self.open_readers()?;
        let stream = self.readers[0].copy_out(&statement)?;
        let mut id = None;
        pgcopy::for_each_field(stream, 2, |column, value| {
            match (column, value) {
                (0, value) => id = value.map(fingerprint),
                (_, Some(at)) => {
                    if let Some(id) = id.take() {
                        ids.insert(id, pgcopy::timestamptz_micros(at, "last_logged_at")?);
                    }
                }
                (_, None) => id = None,
            }
            Ok(())
        })
        .map_err(|e| decode_error(&self.url, "system_errors", e))?;
        let held = std::sync::Arc::new(ids.finish());
        self.errored = Some((since, held.clone()));
        Ok(held)
    }
}

/// Postgres' own count and sums over the UTC range.
fn totals_of(
    client: &mut Client,
    schema: &str,
    range: (DateTime<Utc>, DateTime<Utc>),
    selection: &TenantSelection,
) -> Result<SourceTotals> {
    let (from_utc, to_utc) = (timestamp_literal(range.0), timestamp_literal(range.1));
    let text = sql::render(
        sql::SOURCE_TOTALS,
        &[
            ("schema", schema),
            ("from_utc", &from_utc),
            ("to_utc", &to_utc),
            ("tenant_filter_calls", &selection.sql_filter("c.tenant_id")),
            ("tenant_filter_errors", &selection.sql_filter("e.tenant_id")),
        ],
    );
    let row = client.query_one(&text, &[])?;
    Ok(SourceTotals {
        calls: row.get("calls"),
        errors: row.get("errors"),
        stt_cost_usd: row.get("stt"),
        llm_cost_usd: row.get("llm"),
        tts_cost_usd: row.get("tts"),
        total_cost_usd: row.get("total"),
    })
}

/// One query's rows through a binary COPY stream.
fn copy_frame(
    client: &mut CopyClient,
    url: &DbUrl,
    table: &str,
    query: &str,
    columns: &[(&'static str, FieldKind)],
) -> Result<DataFrame> {
    let statement = sql::render(sql::COPY_OUT, &[("query", query)]);
    let stream = client.copy_out(&statement)?;
    pgcopy::read_frame(stream, columns).map_err(|e| decode_error(url, table, e))
}

/// Whether a server's message says a statement ran past its timeout.
pub fn is_statement_timeout(message: &str) -> bool {
    message.contains("statement timeout")
}

fn decode_error(url: &DbUrl, table: &str, e: pgcopy::DecodeError) -> Error {
    match e {
        // The server ended the stream (a timeout, a lost connection).
        pgcopy::DecodeError::Io(e) => {
            let message = url.redact(&e.to_string()).replace('\n', " ");
            // A statement timeout would end the next attempt the same way.
            if is_statement_timeout(&message) {
                Error::Database(message)
            } else {
                Error::TransientDatabase(message)
            }
        }
        e => Error::RunFailed(format!(
            "cannot read {table} from the source: {e}; check the column types against docs/CONTRACT.md §1"
        )),
    }
}

/// Whether each call is errored: an error carrying its call_id was logged
/// no earlier than 24 hours before the call's `created_at`. The map is
/// built once per run and probed per chunk; rebuilding a hash of the run's
/// errored ids for every chunk (Polars `is_in`) cost 5 % of a 90-day run.
fn errored_flags(
    call_ids: &StringChunked,
    created_at: &DatetimeChunked,
    errored: &ErrorTimes,
) -> Column {
    // Values only (a call is errored or not, never unknown): no validity
    // to build per row.
    let flags = BooleanChunked::from_iter_values(
        "errored".into(),
        call_ids
            .into_iter()
            .zip(created_at.physical())
            .map(|(id, at)| match (id, at) {
                (Some(id), Some(at)) => errored.marks(id.as_bytes(), at),
                _ => false,
            }),
    );
    flags.into_column()
}

/// The rows with `created_at >= from`.
fn since(df: &DataFrame, from: DateTime<Utc>) -> Result<DataFrame> {
    let at = df
        .column("created_at")?
        .as_materialized_series()
        .datetime()?;
    let keep = at.physical().gt_eq(from.timestamp_micros());
    // One chunk: the kept rows then go into the next chunk's frame as one
    // piece, not as every earlier read's (mostly empty) remainder. Without
    // this, a 90-day run's last frame had 90 chunks per column, and every
    // operation on it walked (and the joins concatenated) them all.
    let mut kept = df.filter(&keep)?;
    kept.rechunk_mut();
    Ok(kept)
}

/// `range` in `parts` consecutive, disjoint pieces of (nearly) equal time.
fn split_range(
    range: (DateTime<Utc>, DateTime<Utc>),
    parts: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let parts = parts.max(1) as i32;
    let step = (range.1 - range.0) / parts;
    (0..parts)
        .map(|i| {
            let from = range.0 + step * i;
            let to = if i + 1 == parts { range.1 } else { from + step };
            (from, to)
        })
        .collect()
}

fn found_row<'a>(
    rows: &'a [postgres::Row],
    table: &str,
    column: &str,
) -> Option<&'a postgres::Row> {
    rows.iter().find(|r| {
        r.get::<_, String>("table_name") == table && r.get::<_, String>("column_name") == column
    })
}

/// The source session never writes and never runs away.
fn session_setup(statement_timeout_secs: u64) -> String {
    sql::render(
        sql::SOURCE_SESSION,
        &[("statement_timeout", &statement_timeout_secs.to_string())],
    )
}

/// A range's end as SQL text: a range that ends at
/// `DateTime::<Utc>::MAX_UTC` has no end (Postgres' `infinity`).
fn end_literal(end: DateTime<Utc>) -> String {
    match end == DateTime::<Utc>::MAX_UTC {
        true => "infinity".to_string(),
        false => timestamp_literal(end),
    }
}

/// `alias.created_at < end`, or nothing for a range with no end
/// (`DateTime::<Utc>::MAX_UTC`).
fn until(alias: &str, end: DateTime<Utc>) -> String {
    if end == DateTime::<Utc>::MAX_UTC {
        return String::new();
    }
    format!(
        "AND {alias}.created_at <  '{}'::timestamptz",
        timestamp_literal(end)
    )
}

fn timestamp_literal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn split_range_covers_the_range_once_in_order() {
        let from = Utc.with_ymd_and_hms(2026, 3, 7, 10, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
        for parts in 1..=5 {
            let slices = split_range((from, to), parts);
            assert_eq!(slices.len(), parts);
            assert_eq!(slices[0].0, from);
            assert_eq!(slices[parts - 1].1, to);
            for pair in slices.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "slices touch without overlap");
                assert!(pair[0].0 < pair[0].1);
            }
        }
    }

    #[test]
    fn carried_rows_do_not_pile_up_chunks() {
        // Each chunk's frame is the rows kept from the one before plus a
        // new read: the kept rows must come as one chunk, or a long run's
        // frames end with a chunk per day read so far.
        let frame = |at: &[i64]| {
            let at = Int64Chunked::from_slice("created_at".into(), at)
                .into_datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC));
            DataFrame::new(vec![at.into_column()]).unwrap()
        };
        let mut carried = frame(&[1, 2]);
        for day in 1..=5i64 {
            carried
                .vstack_mut(&frame(&[day * 10, day * 10 + 5]))
                .unwrap();
            let from = DateTime::from_timestamp_micros(day * 10).unwrap();
            carried = since(&carried, from).unwrap();
            assert_eq!(carried.first_col_n_chunks(), 1, "day {day}");
            assert_eq!(carried.height(), 2);
        }
    }

    #[test]
    fn fingerprints_tell_ids_apart_and_match_themselves() {
        let hour = 3600 * 1_000_000i64;
        let call_at = 100 * hour;
        // CA01's last error came 25 hours before its call, CA02's 23 hours before.
        let errored: ErrorTimes = [("CA01", call_at - 25 * hour), ("CA02", call_at - 23 * hour)]
            .iter()
            .map(|(id, at)| (fingerprint(id.as_bytes()), *at))
            .collect();
        let ids = StringChunked::from_iter([Some("CA01"), Some("CA02"), Some("CA03"), None]);
        let at = Int64Chunked::from_iter([Some(call_at); 4])
            .into_datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC));
        let flags = errored_flags(&ids, &at, &errored);
        let flags: Vec<_> = flags.bool().unwrap().into_iter().collect();
        assert_eq!(flags, [Some(false), Some(true), Some(false), Some(false)]);
    }
}
