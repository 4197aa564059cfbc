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

mod access;
mod auth;
mod body;
mod client;
mod connection;
mod counts;
mod listen;
mod pages;
mod params;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::db::DbUrl;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::pipeline::SourceSpec;
use crate::summaries::Summaries;

pub use auth::Auth;
pub use client::Proxies;

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
    /// The proxies whose `X-Forwarded-For` and `-Proto` are believed.
    pub proxies: client::Proxies,
    /// The address readers open (`--public-url`), when `serve` is behind
    /// a proxy: `https` there makes the cookie Secure.
    pub public_url: Option<url::Url>,
    /// A second address that answers `/healthz` alone, for probes.
    pub health_listen: Option<String>,
}

impl Config {
    /// Whether readers reach `serve` over https (`--public-url`).
    pub fn public_https(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
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
    /// Requests at work per reader (`READER`).
    at_work: counts::Counts<String>,
}

tokio::task_local! {
    /// The reader a request is for (a platform user, or a client address
    /// when everyone shares the token), set by authentication.
    static READER: String;
}

impl App {
    /// The requests one reader may have at work at once: half the slots
    /// (at least one), so one reader can never hold them all.
    fn share(&self) -> usize {
        self.config.max_requests.div_ceil(2).max(1)
    }

    /// Counts a request of `reader` at work until what it returns is
    /// dropped (with the work, a stream's included), or refuses it when
    /// the reader has its share already.
    fn start_work(&self, reader: String) -> std::result::Result<counts::Entered<String>, Refusal> {
        self.at_work.enter(reader, self.share()).map_err(|n| {
            Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "you have {n} reports being built already; wait for them (this server builds at most {} at once for one reader)",
                    self.share()
                ),
            )
        })
    }
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
            Reads::Database { url, schema } => {
                crate::deadline::check()?;
                let limit = self.statement_limit();
                match self.kept_session(&limit) {
                    Some(summaries) => summaries,
                    None => {
                        let mut summaries =
                            Summaries::database(url, schema.clone(), "callrollup-serve")?;
                        if let Summaries::Database { client, .. } = &mut summaries {
                            client.batch_execute(&limit)?;
                        }
                        summaries
                    }
                }
            }
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

    /// The statement that ends the request's statements at its deadline
    /// (what is left of its time: waiting for a slot took some).
    fn statement_limit(&self) -> String {
        let left = crate::deadline::current()
            .map_or(self.config.timeout, |d| d.remaining())
            .as_millis()
            .max(1);
        crate::sql::render(
            crate::sql::SERVE_STATEMENT_LIMIT,
            &[("milliseconds", &left.to_string())],
        )
    }

    /// The most recently left session still open and not idle too long,
    /// its statements limited by `limit`.
    fn kept_session(&self, limit: &str) -> Option<Summaries> {
        loop {
            let (mut summaries, _) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|(_, since)| since.elapsed() < IDLE_SESSION);
                idle.pop()?
            };
            // One round trip, bounded, tells a session the server has
            // ended (a restart, an administrator) from a live one.
            if let Summaries::Database { client, .. } = &mut summaries {
                if client.is_valid(Duration::from_secs(2)).is_ok()
                    && client.batch_execute(limit).is_ok()
                {
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
    /// A file written as it is sent (`stream`): content type, file name,
    /// and the work that writes it.
    Stream(&'static str, String, StreamWriter),
}

/// Writes a streamed download (on the request's blocking thread).
pub type StreamWriter = Box<dyn FnOnce(&mut dyn std::io::Write) -> Result<()> + Send>;

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
                attachment(bytes.into(), content_type, &name)
            }
            // Only `blocking` can write one (on its thread).
            Reply::Stream(..) => Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be built; the server's log says why",
            )
            .into_response(),
        }
    }
}

/// A download's response: its type, and its file name to save it as.
fn attachment(body: axum::body::Body, content_type: &'static str, name: &str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    // The name is built from validated dates and a format.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The 504 of a request past its time limit.
fn too_late(limit: Duration) -> Refusal {
    Refusal::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the report took longer than {} s; ask for a shorter period",
            limit.as_secs()
        ),
    )
}

/// Stops a request's work when the request is dropped before it is
/// answered: hyper drops it when its client closes the connection.
struct AbandonOnDrop(Option<Deadline>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(deadline) = self.0.take() {
            deadline.abandon();
        }
    }
}

/// Runs `work` on a blocking thread once a slot is free, within the
/// request's time limit: the work checks the deadline between days and
/// chunks (`crate::deadline`) and its statements end with it, so nothing
/// goes on computing once the answer is a 504 or the client has gone. A
/// streamed download is answered as soon as its work has built it, and
/// written on the same thread, which holds the slot until the end.
async fn blocking<F>(app: Arc<App>, work: F) -> Response
where
    F: FnOnce(&App) -> std::result::Result<Reply, Refusal> + Send + 'static,
{
    let limit = app.config.timeout;
    let at_work = match READER.try_with(String::clone) {
        Ok(reader) => match app.start_work(reader) {
            Ok(at_work) => Some(at_work),
            Err(refusal) => {
                let mut response = refusal.into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return response;
            }
        },
        Err(_) => None,
    };
    let deadline = Deadline::after(limit);
    let mut abandon = AbandonOnDrop(Some(deadline.clone()));
    let runtime = tokio::runtime::Handle::current();
    let app_for_refusals = app.clone();
    let work_deadline = deadline.clone();
    let answer = tokio::time::timeout(limit, async move {
        let slot = app
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        let worker = app.clone();
        let (head, headed) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _at_work = at_work;
            crate::deadline::within(&work_deadline, || {
                let reply = match work(&worker) {
                    // A statement cancelled by the deadline is its 504.
                    Err(_) if work_deadline.is_past() => Err(too_late(limit)),
                    reply => reply,
                };
                let Ok(Reply::Stream(content_type, name, write)) = reply else {
                    let _ = head.send(reply.map(IntoResponse::into_response));
                    return;
                };
                // Built within the request's time; sent within that much
                // again (a 45 MB JSON to a reader on a slow link), the
                // client gone or the server stopping ending it sooner.
                let sending = work_deadline.extended(limit);
                let (mut writer, chunks) = stream::channel(sending, runtime);
                let whole = chunks.whole.clone();
                if head
                    .send(Ok(attachment(chunks.body(), content_type, &name)))
                    .is_err()
                {
                    return;
                }
                crate::fault::pause_point("serve-download-headed");
                let written = write(&mut writer).and_then(|()| {
                    writer
                        .finish(&whole)
                        .map_err(|e| Error::io("cannot send the download", e))
                });
                if let Err(e) = written {
                    crate::log::info(&format!("serve: a download was cut before its end: {e}"));
                }
            })
        });
        headed.await.map_err(|_| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be built; the server's log says why",
            )
        })?
    })
    .await;
    // Answered (a stream goes on being written): the work is wanted.
    abandon.0 = None;
    match answer {
        Ok(Ok(response)) => response,
        Ok(Err(refusal)) => app_for_refusals.scrub(refusal).into_response(),
        Err(_) => {
            deadline.abandon();
            too_late(limit).into_response()
        }
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
        .layer(axum::middleware::from_fn(access::access_log))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            client::identify,
        ))
        .with_state(app)
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
        sessions: auth::Sessions::start(&config.auth)?,
        idle: Default::default(),
        at_work: Default::default(),
        config,
    });
    let served = runtime.block_on({
        let app = app.clone();
        async move {
            let listener = listen::bind(&app.config.listen, "--listen").await?;
            let address = listener
                .local_addr()
                .map_err(|e| Error::io("cannot read the listening address", e))?;
            if let Some(health) = &app.config.health_listen {
                let health = listen::bind(health, "--health-listen").await?;
                if let Ok(at) = health.local_addr() {
                    crate::log::info(&format!("health checks on http://{at}/healthz"));
                }
                let probes = Router::new().route("/healthz", get(|| async { "ok\n" }));
                tokio::spawn(listen::accept(
                    health,
                    probes,
                    listen::HEALTH,
                    Proxies::default(),
                    listen::HEALTH.head_timeout,
                    std::future::pending(),
                ));
            }
            // Once, on stdout: the link to open (with the token, when there is one).
            println!(
                "{}",
                app.config
                    .auth
                    .greeting(address, app.config.public_url.as_ref())
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            crate::log::info(&format!("serving on http://{address}/ until SIGTERM"));
            let proxies = app.config.proxies.clone();
            // An answer's work has the request's time limit; its body
            // gets that much again to reach a slow client.
            let answer = app.config.timeout * 2 + Duration::from_secs(10);
            listen::accept(
                listener,
                router(app),
                listen::PAGES,
                proxies,
                answer,
                listen::stop_signal(),
            )
            .await;
            crate::log::info("stopped: every request in flight was answered");
            Ok(())
        }
    });
    // Work past its time limit (a 504 answered long ago) is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(app);
    served
}
