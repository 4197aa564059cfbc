//! callrollup query — ad-hoc SQL over one window's tables.
//!
//! Usage: callrollup query "SQL" [--date D | --from D --to D] [--tenant UUID]...
//!                         [--format table|csv|json|parquet] [-o FILE]
//!                         [--source DIR] [--reports DIR]
//!                         [--database-url URL] [--target-url URL] [--target-schema NAME]
//!
//! Polars SQL over these tables, limited to the window's tenant days:
//!   call_logs       call_id, tenant_id, status, outcome, stt_cost_usd,
//!                   llm_cost_usd, tts_cost_usd, total_cost_usd, created_at,
//!                   duration_seconds, day (the call's tenant-local day)
//!   system_errors   tenant_id, call_id, error_type, severity, resolved,
//!                   created_at, day (the error's own tenant-local day)
//!   tenants         tenant_id, business_name, timezone, status
//!   tenant_daily, tenant_daily_outcomes, tenant_daily_errors
//!                   the summary tables of the same days
//! The platform tables come from the source (the database or --source
//! DIR), the summary tables from the target database or --reports DIR.
//! Only the contract's columns exist: transcripts, messages and secrets
//! cannot be reached. Money is exact (json and csv print every digit).

use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;

use crate::cli::{parse_tenants, ConnectOpts, SchemaOpts, SourceOpts, WindowOpts};
use crate::error::{Error, Result};
use crate::query::{self, QueryInput};
use crate::selection::TenantSelection;
use crate::summaries::{Summaries, SummaryTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query (Polars SQL), e.g. "SELECT tenant_id, count(*) FROM call_logs GROUP BY tenant_id"
    pub sql: String,

    #[command(flatten)]
    pub window: WindowOpts,

    /// Only this tenant (repeatable).
    #[arg(long = "tenant", value_name = "UUID")]
    pub tenants: Vec<String>,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Write here instead of stdout (required for parquet); written whole
    /// or not at all.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Read the summary tables from the report files `run` wrote under DIR.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,

    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub source: SourceOpts,
}

pub fn execute(args: Args) -> Result<()> {
    if args.format == Format::Parquet && args.output.is_none() {
        return Err(Error::usage("--format parquet writes a file: add -o FILE"));
    }
    let window = args.window.request().resolve(Utc::now())?;
    let tenants = TenantSelection {
        tenants: parse_tenants(&args.tenants)?,
        shard: None,
    };
    let named = query::named_tables(&args.sql);
    let source = if args.source.source.is_some() || args.connect.database_url.is_some() {
        Some(args.source.spec(&args.connect)?)
    } else {
        None
    };
    let needs_summaries = SummaryTable::ALL.iter().any(|t| named.contains(&t.name()));
    let mut summaries = match (&args.reports, needs_summaries) {
        (_, false) => None,
        (Some(dir), true) => Some(Summaries::reports(dir)?),
        (None, true)
            if args.connect.target_url.is_some() || args.connect.database_url.is_some() =>
        {
            Some(Summaries::database(
                &args.connect.target()?,
                args.schema.target_schema()?,
                "callrollup-query",
            )?)
        }
        (None, true) => None,
    };
    let mut prepared = query::prepare(
        &args.sql,
        QueryInput {
            window: &window,
            tenants: &tenants,
            source: source.as_ref(),
            summaries: summaries.as_mut(),
        },
    )?;
    let plan = prepared.plan(&args.sql)?;
    if args.format == Format::Parquet {
        let path = args.output.as_ref().expect("checked above");
        // Streamed into a temporary sibling, then renamed: whole or nothing.
        let tmp = path.with_file_name(format!(
            ".{}.partial",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("query.parquet")
        ));
        let written = prepared.sink_parquet(plan, &tmp).and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written;
    }
    let result = prepared.collect(plan)?;
    let bytes = match args.format {
        Format::Table => query::table(&result)?,
        Format::Csv => query::csv(&result)?,
        Format::Json => query::json(&result)?,
        Format::Parquet => unreachable!("written above"),
    };
    match &args.output {
        Some(path) => crate::sink::files::write_whole(path, &bytes),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| Error::io("cannot write the result to stdout", e)),
    }
}
