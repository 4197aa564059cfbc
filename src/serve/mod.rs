//! `callrollup serve`: a small read-only web view of what the engine
//! already computes, for finance and the on-call engineer. Pages are
//! server-rendered HTML (no script, no external asset), charts are inline
//! SVG, downloads are the bytes `costs --format …` writes for the same
//! options. Every page calls the library functions the commands call
//! (`cmd::costs::report`, `cmd::errors::analysis`, `ledger::list`): there
//! is no second copy of any figure.
//!
//! Safe by construction: every value is escaped by the templates (maud);
//! a Content-Security-Policy forbids scripts; authentication is on by
//! default; only GET and HEAD; a request is bounded in time and in
//! number; the database session is read-only with a statement timeout;
//! SIGTERM stops accepting, lets the requests in flight finish, exits 0.

mod auth;
mod pages;
mod params;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::db::DbUrl;
use crate::error::{Error, Result};
use crate::pipeline::SourceSpec;
use crate::summaries::Summaries;

pub use auth::Auth;

/// Where the pages read the figures.
pub enum Reads {
    /// The report files `run` wrote (no database: `demo`'s folder works).
    Reports(PathBuf),
    /// The summary tables and the ledger of a target schema.
    Database { url: DbUrl, schema: String },
}

/// Everything `serve` needs, checked before it listens.
pub struct Config {
    pub listen: String,
    pub reads: Reads,
    /// A snapshot for error days not rolled up and hourly buckets.
    pub source: Option<SourceSpec>,
    pub auth: Auth,
    pub max_requests: usize,
    pub timeout: Duration,
}

/// The server's shared state.
struct App {
    config: Config,
    /// Requests worked on at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// The platform's sessions (`--auth platform`).
    sessions: auth::Sessions,
    /// Database sessions a finished request left, for the next ones.
    idle: std::sync::Mutex<Vec<(Summaries, Instant)>>,
}

/// How long an idle database session is kept: long enough for the next
/// request of a busy minute, short enough that a session the server or a
/// firewall has dropped meanwhile is rarely met.
const IDLE_SESSION: Duration = Duration::from_secs(60);

impl App {
    /// The figures for one request: a read-only database session whose
    /// statements end with the request's time limit (a kept one when one
    /// is idle: a new session costs a connection, TLS and the schema
    /// check), or the report folder.
    fn summaries(&self) -> Result<Lease<'_>> {
        let summaries = match &self.config.reads {
            Reads::Reports(dir) => Summaries::reports(dir)?,
            Reads::Database { url, schema } => match self.kept_session() {
                Some(summaries) => summaries,
                None => {
                    let mut summaries =
                        Summaries::database(url, schema.clone(), "callrollup-serve")?;
                    if let Summaries::Database { client, .. } = &mut summaries {
                        client.batch_execute(&format!(
                            "SET statement_timeout = '{}s'",
                            self.config.timeout.as_secs()
                        ))?;
                    }
                    summaries
                }
            },
        };
        Ok(Lease {
            app: self,
            summaries: Some(summaries),
        })
    }

    /// A refusal as a web reader gets it: the server's folders named for
    /// what they are, never where they are ("unknown --tenant …: not in
    /// the summary tables (report files under /srv/…)" reached readers).
    fn scrub(&self, mut refusal: Refusal) -> Refusal {
        let mut folders: Vec<(String, &str)> = Vec::new();
        if let Reads::Reports(dir) = &self.config.reads {
            folders.push((dir.display().to_string(), "the report folder"));
        }
        if let Some(SourceSpec::Snapshot(dir)) = &self.config.source {
            folders.push((dir.display().to_string(), "the platform's snapshot"));
        }
        for (path, name) in folders {
            if !path.is_empty() {
                refusal.reason = refusal.reason.replace(&path, name);
            }
        }
        refusal
    }

    /// The most recently left session still open and not idle too long.
    fn kept_session(&self) -> Option<Summaries> {
        loop {
            let (mut summaries, _) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|(_, since)| since.elapsed() < IDLE_SESSION);
                idle.pop()?
            };
            // One round trip tells a session the server has ended (a
            // restart, an administrator) from a live one.
            if let Summaries::Database { client, .. } = &mut summaries {
                if client.is_valid(Duration::from_secs(2)).is_ok() {
                    return Some(summaries);
                }
            }
        }
    }
}

/// A request's figures; its database session goes back to the idle ones
/// when the request is done with it (never after a panic, never closed).
struct Lease<'a> {
    app: &'a App,
    summaries: Option<Summaries>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Summaries;
    fn deref(&self) -> &Summaries {
        self.summaries.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Summaries {
        self.summaries.as_mut().expect("held until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(summaries) = self.summaries.take() else {
            return;
        };
        let Summaries::Database { client, .. } = &summaries else {
            return;
        };
        if std::thread::panicking() || client.is_closed() || summaries.in_snapshot() {
            return;
        }
        let mut idle = self.app.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.app.config.max_requests {
            idle.push((summaries, Instant::now()));
        }
    }
}

/// What a handler answers.
pub enum Reply {
    Html(String),
    /// A file to download: bytes, content type, file name.
    Download(Vec<u8>, &'static str, String),
}

/// A request that cannot be answered: its status and one line why.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        let status = match &e {
            Error::Usage(m) if m.starts_with("unknown --tenant") => StatusCode::NOT_FOUND,
            Error::Usage(_) => StatusCode::BAD_REQUEST,
            Error::Connect { .. } | Error::EngineSchema(_) | Error::TransientDatabase(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Which server, user or schema stays in the server's log.
            crate::log::info(&format!("serve: the database is not ready: {e}"));
            return Refusal::new(
                status,
                "the figures cannot be read right now; the server's log says why",
            );
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The details stay in the server's log.
            crate::log::info(&format!("serve: a request failed: {e}"));
            return Refusal::new(
                status,
                "the report could not be built; the server's log says why",
            );
        }
        Refusal::new(status, e.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        // One line, as text: never markup built from the request.
        let line = self.reason.replace(['\n', '\r'], " ");
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "{} {}: {line}\n",
                self.status.as_u16(),
                status_text(self.status)
            ),
        )
            .into_response()
    }
}

fn status_text(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Html(page) => {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
            }
            Reply::Download(bytes, content_type, name) => {
                let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
                // The name is built from validated dates and a format.
                if let Ok(value) =
                    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_DISPOSITION, value);
                }
                response
            }
        }
    }
}

/// Runs `work` on a blocking thread once a slot is free, within the
/// request's time limit (a statement still running then is ended by the
/// session's own timeout).
async fn blocking<F>(app: Arc<App>, work: F) -> Response
where
    F: FnOnce(&App) -> std::result::Result<Reply, Refusal> + Send + 'static,
{
    let limit = app.config.timeout;
    let app_for_refusals = app.clone();
    let answer = tokio::time::timeout(limit, async move {
        let slot = app
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        let worker = app.clone();
        // The slot is held until the work ends, even past the time limit
        // (its statement is then ended by the session's timeout).
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work(&worker)
        })
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be built; the server's log says why",
            )
        })?
    })
    .await;
    match answer {
        Ok(Ok(reply)) => reply.into_response(),
        Ok(Err(refusal)) => app_for_refusals.scrub(refusal).into_response(),
        Err(_) => Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the report took longer than {} s; ask for a shorter period",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Headers every answer carries: no script runs, nothing is sniffed,
/// framed or cached, no address leaves in a Referer.
async fn secure_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/costs") }),
        )
        .route("/costs", get(pages::costs))
        .route("/costs.csv", get(pages::costs_csv))
        .route("/costs.json", get(pages::costs_json))
        .route("/costs.xlsx", get(pages::costs_xlsx))
        .route("/errors", get(pages::errors))
        .route("/runs", get(pages::runs))
        .route("/tenants/{tenant_id}", get(pages::tenant))
        .fallback(|| async { Refusal::new(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::check,
        ))
        // Says the server is up, nothing about the data; no token.
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(secure_headers))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(app)
}

/// One line per request, in the engine's log format: who (an id of the
/// token or session, its role and tenant; never the secret), the method
/// and the path with its query (the `token` parameter's value left out),
/// the status, the bytes and the time; so an operator can answer "who
/// downloaded this tenant's costs". `/healthz` is not logged (probes).
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = loggable_path(request.uri());
    let response = next.run(request).await;
    if path != "/healthz" {
        let who = response
            .extensions()
            .get::<auth::Who>()
            .map_or("anonymous", |w| w.0.as_str());
        // The body's length where it is known whole (every page and
        // download here is), else "-".
        let bytes = axum::body::HttpBody::size_hint(response.body())
            .exact()
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        crate::log::info(&format!(
            "access: {who} {method} {path} {} {bytes} bytes {:.3}s",
            response.status().as_u16(),
            started.elapsed().as_secs_f64()
        ));
    }
    response
}

/// A request's path and query for the log: the `token` parameter's value
/// replaced, no control character (a query is percent-encoded, but the
/// log must not depend on it).
fn loggable_path(uri: &axum::http::Uri) -> String {
    let mut out = uri.path().to_string();
    if let Some(query) = uri.query() {
        // Decoded as the pages decode them (`%74oken` is `token`); only a
        // parameter a page takes keeps its value, any other (a token,
        // however spelled) is `…`.
        let known = |name: &str| {
            [params::COSTS, params::ERRORS, params::TENANT]
                .iter()
                .any(|names| names.contains(&name))
        };
        let pairs: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| {
                if known(&name) {
                    format!("{name}={value}")
                } else {
                    "…".to_string()
                }
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    crate::text::printable(&out).into_owned()
}

/// Waits for SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Connections open at once; past them, new ones wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// The time a client has to send a request's head (a slow client cannot
/// hold a connection open for ever); an idle keep-alive connection is
/// closed after it too.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM waits for the connections still open.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);

/// Accepts connections until SIGTERM or SIGINT, then stops accepting,
/// lets every request in flight finish (each is bounded by the request
/// time limit) and returns.
async fn accept(listener: tokio::net::TcpListener, router: Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            _ = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait, then go on.
                Err(e) => {
                    crate::log::info(&format!("serve: cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    crate::log::info("stopping: no new connections; answering the requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        crate::log::info("serve: connections still open after the drain time were closed");
    }
}

/// Serves until SIGTERM or SIGINT, then lets the requests in flight
/// finish and returns.
pub fn serve(config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(config.max_requests.max(1) + 2)
        .enable_all()
        .build()
        .map_err(|e| Error::RunFailed(format!("cannot start the server's runtime: {e}")))?;
    // The state outlives the runtime: the database sessions it keeps
    // hold runtimes of their own, which may only be dropped outside one.
    let app = Arc::new(App {
        slots: Arc::new(tokio::sync::Semaphore::new(config.max_requests)),
        sessions: auth::Sessions::default(),
        idle: Default::default(),
        config,
    });
    let served = runtime.block_on({
        let app = app.clone();
        async move {
            let listen = &app.config.listen;
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                Error::usage(format!(
                    "cannot listen on {listen} ({e}); pick another --listen ADDR:PORT"
                ))
            })?;
            let address = listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the listening address", e))?;
            // Once, on stdout: the link to open (with the token, when there is one).
            println!("{}", app.config.auth.greeting(address));
            use std::io::Write;
            let _ = std::io::stdout().flush();
            crate::log::info(&format!("serving on http://{address}/ until SIGTERM"));
            accept(listener, router(app)).await;
            crate::log::info("stopped: every request in flight was answered");
            Ok(())
        }
    });
    // Work past its time limit (a 504 answered long ago) is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(app);
    served
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_never_reaches_the_access_line() {
        for (uri, logged) in [
            (
                "/costs?month=2026-03&token=s3cret&by=day",
                "/costs?month=2026-03&…&by=day",
            ),
            // Spelled so the pages still read it as the token.
            ("/costs?%74oken=s3cret", "/costs?…"),
            ("/costs?Token=s3cret&token%3Ds3cret", "/costs?…&…"),
        ] {
            let uri: axum::http::Uri = uri.parse().unwrap();
            assert_eq!(super::loggable_path(&uri), logged);
        }
    }
}
