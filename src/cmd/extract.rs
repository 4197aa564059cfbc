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
use crate::source::postgres::PostgresSource;
use crate::source::snapshot;

pub fn execute(args: Args) -> Result<()> {
    let window = args.window.request().resolve(Utc::now())?;
    let selection = args.selection.selection()?;
    let source_schema = validate_identifier("--source-schema", &args.database.source_schema)?;
    // Before the (long) extraction: a folder that is not a snapshot is refused.
    snapshot::refuse_foreign_folder(&args.out)?;
    let url = args.connect.source()?;
    let mut source =
        PostgresSource::connect(&url, &source_schema, args.database.statement_timeout)?;
    let shape = source.check_schema()?;
    let fingerprint = source.fingerprint()?;
    source.start_verification(window.utc_range(), &selection)?;
    let (frames, totals) = source.extract(window.utc_range(), &selection, shape, None)?;
    source.verify(&totals)?;
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
