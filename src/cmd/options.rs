//! The I/O behind the shared option groups of `cli`: reading a URL from a
//! mounted file, opening the summary tables, writing an `-o` file. `cli`
//! only declares what the command line holds; the commands act on it here.

use crate::cli::{ConnectOpts, OutputOpts, SchemaOpts, SourceOpts, SourceUrlOpts, SummaryOpts};
use crate::db::{validate_identifier, DbUrl};
use crate::error::{Error, Result};

/// A URL kept in a file: its first line, trimmed.
fn url_from_file(flag: &str, path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read {flag} {} ({e}); point it at a file holding the URL",
            path.display()
        ))
    })?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

impl SourceUrlOpts {
    /// The source URL: --database-url-file, --database-url / DATABASE_URL,
    /// or, with neither, libpq's environment (PGHOST, PGDATABASE, ...).
    pub fn source(&self) -> Result<DbUrl> {
        if let Some(path) = &self.database_url_file {
            return DbUrl::parse(
                "--database-url-file",
                &url_from_file("--database-url-file", path)?,
            );
        }
        match &self.database_url {
            Some(u) => DbUrl::parse("--database-url", u),
            None if crate::db::Libpq::names_a_server() => {
                DbUrl::parse("the libpq environment", "postgresql://")
            }
            None => Err(Error::usage(
                "no source database: pass --database-url (or --database-url-file), set DATABASE_URL, or set PGHOST/PGDATABASE",
            )),
        }
    }

    /// Whether a source database is configured at all.
    pub fn has_source(&self) -> bool {
        self.database_url_file.is_some()
            || self.database_url.is_some()
            || crate::db::Libpq::names_a_server()
    }
}

impl ConnectOpts {
    pub fn source(&self) -> Result<DbUrl> {
        self.source_url.source()
    }

    pub fn has_source(&self) -> bool {
        self.source_url.has_source()
    }

    /// Whether a target database is configured (it defaults to the source).
    pub fn has_target(&self) -> bool {
        self.target_url_file.is_some() || self.target_url.is_some() || self.has_source()
    }

    pub fn target(&self) -> Result<DbUrl> {
        if let Some(path) = &self.target_url_file {
            return DbUrl::parse(
                "--target-url-file",
                &url_from_file("--target-url-file", path)?,
            );
        }
        match &self.target_url {
            Some(u) => DbUrl::parse("--target-url", u),
            None => self.source().map_err(|_| {
                Error::usage("no target database: pass --target-url or --database-url (or set CALLROLLUP_TARGET_URL / DATABASE_URL)")
            }),
        }
    }
}

impl SourceOpts {
    /// The snapshot, or the source database when one is configured.
    pub fn spec_if_any(
        &self,
        connect: &ConnectOpts,
    ) -> Result<Option<crate::pipeline::SourceSpec>> {
        if self.source.is_some() || connect.has_source() {
            Ok(Some(self.spec(connect)?))
        } else {
            Ok(None)
        }
    }

    /// The snapshot, or the source database from `connect`.
    pub fn spec(&self, connect: &ConnectOpts) -> Result<crate::pipeline::SourceSpec> {
        Ok(match &self.source {
            Some(dir) => crate::pipeline::SourceSpec::Snapshot(dir.clone()),
            None => crate::pipeline::SourceSpec::Postgres {
                url: connect.source()?,
                schema: validate_identifier("--source-schema", &self.database.source_schema)?,
                statement_timeout_secs: self.database.statement_timeout,
                streams: usize::from(self.streams),
            },
        })
    }
}

impl SummaryOpts {
    /// `--reports DIR`, else the target database when one is configured
    /// (its engine schema must be current), else None.
    pub fn open(
        &self,
        connect: &ConnectOpts,
        schema: &SchemaOpts,
        application: &str,
    ) -> Result<Option<crate::summaries::Summaries>> {
        use crate::summaries::Summaries;
        match &self.reports {
            Some(dir) => Ok(Some(Summaries::reports(dir)?)),
            None if connect.has_target() => Ok(Some(Summaries::database(
                &connect.target()?,
                schema.target_schema()?,
                application,
            )?)),
            None => Ok(None),
        }
    }
}

impl OutputOpts {
    /// Writes `bytes` whole to the file, or to stdout.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        match &self.output {
            Some(path) => crate::sink::files::write_whole(path, bytes),
            None => std::io::stdout()
                .write_all(bytes)
                .map_err(|e| Error::io("cannot write to stdout", e)),
        }
    }
}
