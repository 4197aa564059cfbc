//! Database URLs and connections. A URL's password is kept out of every
//! message: `DbUrl` only ever displays its masked form.

use std::fmt;
use std::time::Duration;

use postgres::{Client, NoTls};

use crate::error::{Error, Result};

mod tls;

#[derive(Clone)]
pub struct DbUrl {
    raw: String,
    masked: String,
    password: Option<String>,
}

impl DbUrl {
    pub fn parse(flag: &str, value: &str) -> Result<Self> {
        let parsed = url::Url::parse(value).map_err(|e| {
            Error::usage(format!(
                "{flag} is not a libpq URL ({e}); use postgres://user@host:5432/dbname"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(Error::usage(format!(
                "{flag} must start with postgres:// or postgresql://, not {}://",
                parsed.scheme()
            )));
        }
        let password = parsed
            .password()
            .map(percent_decode)
            .filter(|p| !p.is_empty());
        let mut masked = parsed.clone();
        if parsed.password().is_some() {
            let _ = masked.set_password(Some("***"));
        }
        // Query parameters may carry a password too (?password=...).
        let pairs: Vec<(String, String)> = masked
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        let query_password = parsed
            .query_pairs()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned());
        if !pairs.is_empty() {
            masked.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let password = password.or(query_password).or_else(|| {
            // As libpq: PGPASSWORD, then the password file.
            let env = Libpq::from_env();
            env.password.clone().or_else(|| {
                let (host, port, dbname, user) = env.target_of(&parsed);
                pgpass_lookup(&host, &port, &dbname, &user)
            })
        });
        Ok(DbUrl {
            raw: value.to_string(),
            masked: masked.to_string(),
            password,
        })
    }

    /// The URL with its password, for drivers only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// Removes the password from any text a driver produced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.raw, &self.masked);
        if let Some(p) = &self.password {
            out = out.replace(p.as_str(), "***");
        }
        out
    }

    /// Connects with the postgres crate; failures name the masked URL.
    /// Connects with the postgres crate; failures name the masked URL.
    /// `sslmode` works as in libpq: disable, prefer, require, verify-ca,
    /// verify-full (with `sslrootcert`).
    pub fn connect(&self, application: &str) -> Result<Client> {
        let (config, tls) = self.config(application)?;
        let config = postgres::Config::from(config);
        let client = match &tls {
            None => config.connect(NoTls),
            Some(tls) => config.connect(tls.clone()),
        }
        .map_err(|e| self.connect_failed(&e))?;
        cancel_on_stop(Token::Blocking(client.cancel_token()), tls);
        let mut client = client;
        client.batch_execute(crate::sql::CONNECTION_CHECK)?;
        Ok(client)
    }

    /// A reporting session: read-only, with statement, lock and
    /// idle-in-transaction timeouts (queries/report_session.sql).
    pub fn connect_reporting(&self, application: &str) -> Result<Client> {
        let mut client = self.connect(application)?;
        client.batch_execute(crate::sql::REPORT_SESSION)?;
        Ok(client)
    }

    /// `migrate`'s session, with its timeouts (queries/admin_session.sql).
    pub fn connect_admin(&self, application: &str) -> Result<Client> {
        let mut client = self.connect(application)?;
        client.batch_execute(crate::sql::ADMIN_SESSION)?;
        Ok(client)
    }

    /// A connection driven by a tokio runtime of its own, for streaming
    /// COPY out without a runtime entry per row (see `CopyClient`).
    pub fn connect_copy(&self, application: &str) -> Result<CopyClient> {
        let (config, tls) = self.config(application)?;
        let tls_for_cancel = tls.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::RunFailed(format!("cannot start an I/O runtime: {e}")))?;
        let client = runtime.block_on(async {
            match tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(connection);
                    Ok(client)
                }
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(connection);
                    Ok(client)
                }
            }
        });
        let client = client.map_err(|e: tokio_postgres::Error| self.connect_failed(&e))?;
        cancel_on_stop(Token::Async(client.cancel_token()), tls_for_cancel);
        let mut copy = CopyClient { runtime, client };
        copy.batch_execute(crate::sql::CONNECTION_CHECK)?;
        Ok(copy)
    }

    fn connect_failed(&self, e: &postgres::Error) -> Error {
        Error::Connect {
            url: self.masked.clone(),
            reason: self.redact(&connect_reason(e)),
        }
    }

    /// The driver's configuration for this URL (libpq's environment filling
    /// what it leaves out) and the TLS connector its sslmode needs, if any.
    fn config(&self, application: &str) -> Result<(tokio_postgres::Config, Option<tls::Tls>)> {
        use tokio_postgres::config::SslMode;
        let mut url = url::Url::parse(&self.raw).map_err(|e| Error::usage(e.to_string()))?;
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        // As libpq: TLS when the server offers it, plain otherwise.
        let env = Libpq::from_env();
        let sslmode = param("sslmode")
            .or_else(|| env.sslmode.clone())
            .unwrap_or_else(|| "prefer".to_string());
        let root_cert = param("sslrootcert").or_else(|| env.sslrootcert.clone());
        // The driver knows disable/prefer/require only; TLS checks are ours.
        let kept: Vec<&(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        let mut config: tokio_postgres::Config =
            url.as_str().parse().map_err(|e: postgres::Error| {
                Error::usage(format!(
                    "{} is not a valid libpq URL: {}",
                    self,
                    self.redact(&e.to_string())
                ))
            })?;
        env.fill(&mut config);
        if config.get_password().is_none() {
            if let Some(p) = &self.password {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name(application);
        let verify = match sslmode.as_str() {
            "disable" => return Ok((config, None)),
            "allow" | "prefer" => {
                config.ssl_mode(SslMode::Prefer);
                false
            }
            "require" => {
                config.ssl_mode(SslMode::Require);
                false
            }
            "verify-ca" | "verify-full" => {
                config.ssl_mode(SslMode::Require);
                true
            }
            other => {
                return Err(Error::usage(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        };
        let tls = if verify {
            tls::Tls::verifying(sslmode == "verify-full", root_cert.as_deref())
        } else {
            encrypting_tls()
        }
        .map_err(|e| Error::usage(format!("cannot set up TLS for {self}: {e}")))?;
        Ok((config, Some(tls)))
    }
}

/// A connection's cancel key, from either driver.
#[derive(Clone)]
enum Token {
    Blocking(postgres::CancelToken),
    Async(tokio_postgres::CancelToken),
}

/// How to cancel what each of the process's connections is running.
type Canceller = (Token, Option<tls::Tls>);

/// Every connection this process opened: a stop signal cancels whatever
/// statement each one runs or waits in (a lock, a long COPY, the merge),
/// so the run ends within seconds instead of at its next check. A token
/// of a connection that has closed is harmless: the server ignores it.
static CANCELLABLE: std::sync::Mutex<Vec<Canceller>> = std::sync::Mutex::new(Vec::new());

/// Connections remembered for a stop: a run opens a few dozen at most;
/// a long-lived `serve` opens one per request, and the oldest (long
/// closed) are forgotten rather than kept for ever.
const CANCELLABLE_KEPT: usize = 256;

fn cancel_on_stop(token: Token, tls: Option<tls::Tls>) {
    if let Ok(mut all) = CANCELLABLE.lock() {
        if all.len() >= CANCELLABLE_KEPT {
            all.remove(0);
        }
        all.push((token, tls));
    }
}

/// Sends a cancel request (libpq's `PQcancel`) for every connection of
/// the process; failures are ignored (the connection may be gone).
pub fn cancel_all() {
    let all: Vec<Canceller> = match CANCELLABLE.lock() {
        Ok(all) => all.clone(),
        Err(_) => return,
    };
    // Each request on a thread of its own, not waited for: a server slow
    // to accept one connection holds up neither the others nor a
    // report's deadline.
    for canceller in all {
        let _ = std::thread::Builder::new()
            .name("cancel".into())
            .spawn(move || cancel(canceller));
    }
}

/// Sends one connection's cancel request (errors ignored: a connection
/// that is gone has nothing running).
fn cancel((token, tls): Canceller) {
    let _ = match (token, tls) {
        (Token::Blocking(token), None) => token.cancel_query(NoTls),
        (Token::Blocking(token), Some(tls)) => token.cancel_query(tls),
        (Token::Async(token), tls) => {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            match tls {
                None => runtime.block_on(token.cancel_query(NoTls)),
                Some(tls) => runtime.block_on(token.cancel_query(tls)),
            }
        }
    };
}

/// A connection for reading big COPY streams. Postgres sends a COPY out
/// as one message per row, and the `postgres` crate's reader enters its
/// runtime (`block_on`) once per message: about a tenth of the engine's
/// CPU on the 5-million-call window. This one enters it once per batch of
/// whatever messages have arrived (up to `COPY_BATCH_BYTES`).
pub struct CopyClient {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

/// How many bytes of COPY data one runtime entry collects at most.
const COPY_BATCH_BYTES: usize = 1 << 18;

impl CopyClient {
    pub fn batch_execute(&mut self, statements: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.batch_execute(statements))?;
        Ok(())
    }

    /// The data of `COPY … TO STDOUT`, as a reader.
    pub fn copy_out(&mut self, statement: &str) -> Result<CopyReader<'_>> {
        let stream = self.runtime.block_on(self.client.copy_out(statement))?;
        Ok(CopyReader {
            runtime: &self.runtime,
            stream: Box::pin(stream),
            batch: std::collections::VecDeque::new(),
            ended: false,
        })
    }
}

/// A COPY out stream as `Read`, fed a batch of messages at a time.
pub struct CopyReader<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stream: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    batch: std::collections::VecDeque<bytes::Bytes>,
    ended: bool,
}

impl CopyReader<'_> {
    /// Waits for at least one message (unless the stream ended), then takes
    /// every message already arrived, up to `COPY_BATCH_BYTES`.
    fn refill(&mut self) -> std::io::Result<()> {
        use futures_util::Stream;
        use std::task::Poll;
        let (stream, batch, ended) = (&mut self.stream, &mut self.batch, &mut self.ended);
        self.runtime.block_on(std::future::poll_fn(|cx| {
            let mut bytes = 0;
            loop {
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        bytes += data.len();
                        batch.push_back(data);
                        if bytes >= COPY_BATCH_BYTES {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                    Poll::Ready(None) => {
                        *ended = true;
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending if batch.is_empty() => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(Ok(())),
                }
            }
        }))
    }
}

impl std::io::Read for CopyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use bytes::Buf;
        if self.batch.is_empty() && !self.ended {
            self.refill()?;
        }
        // As much of the batch as fits: one call, many rows.
        let mut filled = 0;
        while filled < buf.len() {
            let Some(front) = self.batch.front_mut() else {
                break;
            };
            let n = front.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&front[..n]);
            front.advance(n);
            filled += n;
            if front.is_empty() {
                self.batch.pop_front();
            }
        }
        Ok(filled)
    }
}

/// libpq's environment variables, for what a URL leaves out: `PGHOST`,
/// `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`,
/// `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT` (and `PGPASSFILE`, read by
/// `pgpass_lookup`). A URL's own values win, as in libpq.
#[derive(Default)]
pub struct Libpq {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    dbname: Option<String>,
    password: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    connect_timeout: Option<String>,
}

impl Libpq {
    pub fn from_env() -> Libpq {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Libpq {
            host: var("PGHOST"),
            port: var("PGPORT"),
            user: var("PGUSER"),
            dbname: var("PGDATABASE"),
            password: var("PGPASSWORD"),
            sslmode: var("PGSSLMODE"),
            sslrootcert: var("PGSSLROOTCERT"),
            connect_timeout: var("PGCONNECT_TIMEOUT"),
        }
    }

    /// Whether the environment names a server, so that no URL is needed.
    pub fn names_a_server() -> bool {
        let env = Libpq::from_env();
        env.host.is_some() || env.dbname.is_some()
    }

    /// Host, port, database and user a URL reaches, with the environment
    /// filling what it leaves out (for the password file).
    fn target_of(&self, url: &url::Url) -> (String, String, String, String) {
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .or_else(|| self.host.clone())
            .unwrap_or_else(|| "localhost".into());
        let port = url
            .port()
            .map(|p| p.to_string())
            .or_else(|| self.port.clone())
            .unwrap_or_else(|| "5432".into());
        let user = Some(url.username())
            .filter(|u| !u.is_empty())
            .map(percent_decode)
            .or_else(|| self.user.clone())
            .unwrap_or_default();
        let dbname = Some(url.path().trim_start_matches('/'))
            .filter(|d| !d.is_empty())
            .map(percent_decode)
            .or_else(|| self.dbname.clone())
            .unwrap_or_else(|| user.clone());
        (host, port, dbname, user)
    }

    fn fill(&self, config: &mut tokio_postgres::Config) {
        if config.get_hosts().is_empty() {
            if let Some(host) = &self.host {
                config.host(host);
            }
        }
        if config.get_ports().is_empty() {
            if let Some(port) = self.port.as_deref().and_then(|p| p.parse().ok()) {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            if let Some(user) = &self.user {
                config.user(user);
            }
        }
        if config.get_dbname().is_none() {
            if let Some(dbname) = &self.dbname {
                config.dbname(dbname);
            }
        }
        if config.get_connect_timeout().is_none() {
            if let Some(secs) = self.connect_timeout.as_deref().and_then(|s| s.parse().ok()) {
                config.connect_timeout(Duration::from_secs(secs));
            }
        }
    }
}

/// The password for a server from the password file (`PGPASSFILE`, else
/// `~/.pgpass`), as libpq reads it: `host:port:database:user:password`
/// lines, `*` matching anything, `\:` and `\\` escaped, the first match
/// wins; a file others can read is ignored, as libpq does.
pub fn pgpass_lookup(host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            crate::log::info(&format!(
                "password file {} is readable by others and is ignored (chmod 0600 it)",
                path.display()
            ));
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("a field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// The TLS of sslmode prefer and require, built once per process (see
/// `tls`: these modes load no CA store). The verifying modes build theirs
/// for each connection, so a replaced `sslrootcert` counts from the next
/// connection on, as with libpq.
fn encrypting_tls() -> std::result::Result<tls::Tls, openssl::error::ErrorStack> {
    static TLS: std::sync::OnceLock<tls::Tls> = std::sync::OnceLock::new();
    if let Some(tls) = TLS.get() {
        return Ok(tls.clone());
    }
    let tls = tls::Tls::encrypting()?;
    Ok(TLS.get_or_init(|| tls).clone())
}

fn connect_reason(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason.replace('\n', " ")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.masked)
    }
}

/// A SQL identifier we accept for schema names: plain lower-case names only,
/// so they can be spliced into SQL text without quoting surprises.
pub fn validate_identifier(flag: &str, name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::usage(format!(
            "{flag} {name:?} is not a plain schema name; use lower-case letters, digits and _"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_as_libpq_reads_them() {
        assert_eq!(
            split_pgpass("db.example:5432:*:app:pa\\:ss\\\\word"),
            ["db.example", "5432", "*", "app", "pa:ss\\word"]
        );
        // A password may hold a colon unescaped in the last field.
        assert_eq!(split_pgpass("h:1:d:u:a:b")[4], "a:b");
    }

    #[test]
    fn password_never_displays() {
        let u = DbUrl::parse(
            "--database-url",
            "postgres://app:s%40cret@db:5432/x?sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            u.to_string(),
            "postgres://app:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(u.redact("failed for s@cret"), "failed for ***");
        let q = DbUrl::parse("--database-url", "postgres://db/x?password=hunter2").unwrap();
        assert!(!q.to_string().contains("hunter2"));
        assert_eq!(q.redact("hunter2"), "***");
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(DbUrl::parse("--database-url", "mysql://db/x").is_err());
        assert!(DbUrl::parse("--database-url", "not a url").is_err());
    }
}
