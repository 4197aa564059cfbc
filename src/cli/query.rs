//! `callrollup query`'s arguments (the command itself is `cmd::query`).

use super::{ConnectOpts, OutputOpts, SchemaOpts, SourceOpts, SummaryOpts, TenantOpts, WindowOpts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query (one SELECT, Postgres' dialect), e.g. "SELECT tenant_id, count(*) FROM call_logs GROUP BY tenant_id"
    pub sql: String,

    /// Memory for the columns the query reads and the engine's work, in
    /// MiB; past it the engine spills to TMPDIR or the query fails.
    #[arg(long, value_name = "MIB", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub memory_limit: u64,

    #[command(flatten)]
    pub window: WindowOpts,

    #[command(flatten)]
    pub tenants: TenantOpts,

    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Where the result goes (a file is required for parquet).
    #[command(flatten)]
    pub output: OutputOpts,

    #[command(flatten)]
    pub summaries: SummaryOpts,

    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub source: SourceOpts,
}
