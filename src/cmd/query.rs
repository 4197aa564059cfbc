//! callrollup query — ad-hoc SQL over one window's tables.
//!
//! Usage: `callrollup query --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! SQL (Postgres' dialect, on Apache DataFusion) over these tables, limited to the window's tenant days:
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

use std::time::Duration;

use crate::cli::query::{Args, Format};
use chrono::Utc;

use crate::error::Result;
use crate::query::{self, Limits, QueryInput};
use crate::tables::Table;

pub fn execute(args: Args) -> Result<()> {
    if args.format == Format::Parquet {
        args.output.require_file("parquet")?;
    }
    let window = args.window.request().resolve(Utc::now())?;
    crate::window::check_span(window.from, window.to)?;
    let tenants = args.tenants.selection()?;
    let checked = query::check(&args.sql)?;
    // The query's own plan says which columns it reads: only those are read.
    let columns = query::columns_read(&checked)?;
    let source = if query::SOURCE_TABLES.iter().any(|t| columns.contains_key(t)) {
        args.source.spec_if_any(&args.connect)?
    } else {
        None
    };
    let needs_summaries = Table::reported().any(|t| columns.contains_key(t.name()));
    let mut summaries = if needs_summaries {
        args.summaries
            .open(&args.connect, &args.schema, "callrollup-query")?
    } else {
        None
    };
    let limits = Limits {
        memory: (args.memory_limit as usize).saturating_mul(1 << 20),
        time: Duration::from_secs(args.source.database.statement_timeout),
    };
    let session = query::Session::open(
        QueryInput {
            window: &window,
            tenants: &tenants,
            source: source.as_ref(),
            summaries: summaries.as_mut(),
        },
        &columns,
        limits,
    )?;
    if args.format == Format::Parquet {
        let path = args.output.output.as_ref().expect("checked above");
        // Streamed into a temporary sibling, then renamed: whole or nothing.
        return crate::sink::files::write_whole_with(path, |_, file| {
            query::write_parquet(&session, &checked, file).map_err(query::as_usage)
        });
    }
    let result = session.run(&checked)?.frame().map_err(query::as_usage)?;
    let bytes = match args.format {
        Format::Table => query::table(&result),
        Format::Csv => query::csv(&result),
        Format::Json => query::json(&result),
        Format::Parquet => unreachable!("written above"),
    }
    .map_err(query::as_usage)?;
    args.output.write(&bytes)
}
