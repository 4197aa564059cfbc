//! `callrollup serve`'s arguments (the command itself is `cmd::serve`).

use std::path::PathBuf;

use super::{ConnectOpts, SchemaOpts, SummaryOpts};

/// Who may read the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A token: printed once at start (random) or read from --token-file.
    Token,
    /// The platform's own sessions (a bearer token or the `session`
    /// cookie, matched by its SHA-256 in `sessions`): operators see
    /// everything, a customer only its own tenant.
    Platform,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The target database (the summary tables and the ledger), read with
    /// a read-only session; or --reports DIR.
    #[command(flatten)]
    pub connect: ConnectOpts,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub summaries: SummaryOpts,

    /// A Parquet snapshot (`callrollup extract`) for the error days no run
    /// rolled up yet and for hourly buckets; the platform's tables are
    /// never read otherwise.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    /// Address and port to listen on (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// How readers prove who they are.
    #[arg(long, value_enum, default_value_t = AuthMode::Token)]
    pub auth: AuthMode,

    /// Schema of the platform's `sessions` and `users` (--auth platform).
    #[arg(long, default_value = "public")]
    pub sessions_schema: String,

    /// A fixed token (its first line: at least 32 characters, random, e.g.
    /// `openssl rand -hex 32`), e.g. a mounted secret, never printed;
    /// without it a random one of 256 bits is printed at start.
    #[arg(long, value_name = "FILE", env = "CALLROLLUP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Requests worked on at once; more wait (up to --request-timeout).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_requests: u16,

    /// Longest a request may take, in seconds (also each database
    /// statement's timeout).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,

    /// The address readers open when a proxy or ingress is in front (e.g.
    /// https://costs.example.com/): printed instead of the listening one;
    /// https makes the token cookie `Secure` and `__Host-`.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// A proxy in front of `serve` (an address or a network, e.g.
    /// 10.0.0.0/8; repeat for more): only its X-Forwarded-For and
    /// X-Forwarded-Proto are believed, for the limits per client and the
    /// access lines.
    #[arg(long, value_name = "NETWORK")]
    pub trusted_proxy: Vec<String>,

    /// A second address that answers /healthz alone, for liveness and
    /// readiness probes: answered even when every page connection is taken.
    #[arg(long, value_name = "ADDR")]
    pub health_listen: Option<String>,
}
