//! callrollup extract — a window of the platform as a Parquet snapshot.
//!
//! Usage: `callrollup extract --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! Writes `tenants.parquet`, `call_logs.parquet`, `system_errors.parquet`
//! (only the columns the engine reads) and `manifest.json` (window, row
//! counts, cost sums, checksums, source fingerprint, engine and snapshot
//! versions, and the tenant selection). `run --source DIR` then gives the
//! same rollups as reading Postgres, without a connection to production,
//! and replaces only the rows of the tenants the snapshot holds. An
//! existing `--out` is replaced only when it is an earlier snapshot.

use crate::cli::extract::Args;

use chrono::Utc;

use crate::db::validate_identifier;
use crate::error::Result;
use crate::pipeline::{Input, SourceSpec};
use crate::source::snapshot;

pub fn execute(args: Args) -> Result<()> {
    let window = args.window.request().resolve(Utc::now())?;
    let selection = args.selection.selection()?;
    let source_schema = validate_identifier("--source-schema", &args.database.source_schema)?;
    // Before the (long) extraction: a folder that is not a snapshot is refused.
    snapshot::refuse_foreign_folder(&args.out)?;
    // The pipeline's own reader: connect, check the columns, read the
    // window and prove it against Postgres' own totals.
    let mut input = Input::open(&SourceSpec::Postgres {
        url: args.connect.source()?,
        schema: source_schema,
        statement_timeout_secs: args.database.statement_timeout,
        streams: usize::from(crate::source::postgres::DEFAULT_STREAMS),
    })?;
    let fingerprint = input.fingerprint()?;
    let (frames, totals) = input.read_window(&window, &selection)?;
    let manifest = snapshot::write(&args.out, &frames, &window, &fingerprint, &selection)?;
    println!(
        "wrote snapshot {} for {}..{} ({}): {} tenants, {} calls, {} errors, total cost {} USD",
        args.out.display(),
        manifest.window_from,
        manifest.window_to,
        selection.describe(),
        frames.tenants.height(),
        totals.calls,
        totals.errors,
        crate::money::format(totals.total_cost_usd)
    );
    Ok(())
}
