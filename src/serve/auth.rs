//! Who may read the pages. `token` (the default): one secret, printed once
//! at start or read from a file; `?token=` on any page sets an HttpOnly,
//! SameSite=Strict cookie so links keep working, and a request with
//! neither is refused (401). `platform`: the platform's own sessions, a
//! bearer token or the `session` cookie whose SHA-256 (hex) is a
//! `sessions.session_hash` that has not expired; an `operator` reads
//! everything, a `customer` only its own tenant's page and costs (403
//! elsewhere). Only `sessions.session_hash` (in a WHERE, never selected),
//! `expires_at`, `user_id` and `users.user_id`, `tenant_id`, `role` are
//! read (queries/serve_session.sql).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{App, Refusal};
use crate::db::DbUrl;
use crate::deadline::Deadline;
use crate::sql;

/// The cookie that carries the token.
pub const TOKEN_COOKIE: &str = "callrollup_token";
/// The platform's session cookie.
pub const SESSION_COOKIE: &str = "session";

pub enum Auth {
    /// One secret; `printed` when the server made it (a token read from
    /// `--token-file` is never printed: the logs are not where it lives).
    Token { token: String, printed: bool },
    /// The platform database that holds `sessions` and `users`.
    Platform { url: DbUrl, schema: String },
}

impl Auth {
    /// A random token of 256 bits from the system's CSPRNG, as 64 hex
    /// digits (two UUIDv4s, as before, held 244).
    pub fn random_token() -> crate::error::Result<String> {
        let mut bytes = [0u8; 32];
        openssl::rand::rand_bytes(&mut bytes).map_err(|e| {
            crate::error::Error::RunFailed(format!("cannot draw a random token: {e}"))
        })?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The line printed once at start: the address to open (the public
    /// one when `serve` is behind a proxy).
    pub fn greeting(&self, address: SocketAddr, public: Option<&url::Url>) -> String {
        let base = public.map_or_else(|| format!("http://{address}/"), |u| u.as_str().to_string());
        match self {
            Auth::Token {
                token,
                printed: true,
            } => format!("{base}?token={token}"),
            Auth::Token { printed: false, .. } => format!(
                "{base} (the token of --token-file is not printed: send it as `Authorization: Bearer <token>`, or add token=<token> to the first page's address once to set the cookie)"
            ),
            Auth::Platform { .. } => format!(
                "{base} (platform sessions: a bearer token or the `{SESSION_COOKIE}` cookie)"
            ),
        }
    }
}

/// Equal without telling, by its timing, how much of a guess was right.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A cookie of the request.
fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The query's `token` parameter.
fn query_token(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

fn unauthorized(why: &str) -> Response {
    let mut response = Refusal::new(StatusCode::UNAUTHORIZED, why).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Who a request came from, for the access line (`serve::access_log`):
/// an id of the secret, never the secret.
#[derive(Debug, Clone)]
pub struct Who(pub String);

/// The first 12 hex digits of a secret's SHA-256: names a token or a
/// session in a log line without giving it away.
fn secret_id(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A platform session's user and what it may read.
#[derive(Debug, Clone)]
struct Signed {
    user: uuid::Uuid,
    reader: Reader,
}

/// Who a platform session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    Operator,
    Customer(uuid::Uuid),
}

/// The cookie that carries the token for a reader on `https`: Secure, and
/// `__Host-` so no other host or plain-http page can set it.
pub const TOKEN_COOKIE_HTTPS: &str = "__Host-callrollup_token";

pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match &app.config.auth {
        Auth::Token { token, .. } => {
            let who = Who(format!("token {}", secret_id(token)));
            let https = request
                .extensions()
                .get::<super::client::Client>()
                .is_some_and(|c| c.https);
            let cookie_name = if https {
                TOKEN_COOKIE_HTTPS
            } else {
                TOKEN_COOKIE
            };
            // A header never lands in a proxy's access log as a query does.
            let by_header = bearer(&request).is_some_and(|t| same_secret(t, token));
            let by_query =
                !by_header && query_token(request.uri()).is_some_and(|t| same_secret(&t, token));
            let by_cookie = cookie(&request, cookie_name).is_some_and(|t| same_secret(t, token));
            if !(by_header || by_query || by_cookie) {
                return unauthorized("open the link `callrollup serve` printed (it carries ?token=…), or send the token as `Authorization: Bearer`");
            }
            // Everyone shares the token: a reader is a client address.
            let reader = format!("address {}", client_address(&request));
            let mut response = super::READER.scope(reader, next.run(request)).await;
            response.extensions_mut().insert(who);
            if by_query {
                let secure = if https { "; Secure" } else { "" };
                let cookie =
                    format!("{cookie_name}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Auth::Platform { .. } => platform(app.clone(), request, next).await,
    }
}

/// The platform's sessions as `serve` checks them. Lookups run on threads
/// of their own, `LOOKUPS` of them, each with its own connection (never
/// the pages' threads: a lookup stuck behind a lock cannot starve a
/// page), each statement and lock wait limited to what is left of its
/// request's time. A reader found is remembered: trusted without asking
/// for `REMEMBERED`, then still served for up to `STALE_SERVED` while it
/// is checked again in the background (a platform database that is slow
/// for a minute does not sign everybody out), never past its session's
/// end. Made-up tokens cost their sender: after `FAILURES_PER_MINUTE`
/// unknown sessions from one client address, that address waits.
pub struct Sessions {
    known: std::sync::Mutex<HashMap<String, Remembered>>,
    /// One permit per lookup queued or at work.
    lookups: Arc<tokio::sync::Semaphore>,
    jobs: Option<std::sync::mpsc::SyncSender<Lookup>>,
    /// Unknown sessions per client address in the current minute.
    failures: std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Sessions being checked again in the background.
    refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
}

struct Remembered {
    signed: Signed,
    /// Trusted without asking until then.
    fresh_until: Instant,
    /// Served while being checked again until then.
    usable_until: Instant,
}

/// One lookup for a worker: the session's hash, by when, and where the
/// answer goes. The permit is released when the worker is done with it.
struct Lookup {
    hash: String,
    deadline: Deadline,
    answer: tokio::sync::oneshot::Sender<Result<Found, Refusal>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A session found, and when it ends.
type Found = Option<(Signed, Instant)>;

/// How long a session found stays trusted without asking again: a session
/// ended on the platform is refused here at most this much later.
const REMEMBERED: Duration = Duration::from_secs(30);
/// How long past `REMEMBERED` a reader is still served while its session
/// is checked again (when the check cannot be made, at most this long).
const STALE_SERVED: Duration = Duration::from_secs(300);
/// Sessions remembered at once (then forgotten all together).
const REMEMBERED_MAX: usize = 10_000;
/// Lookups queued or at work at once, and the threads that do them.
const LOOKUPS: usize = 2;
/// How long a sign-in waits for its turn to be looked up.
const LOOKUP_WAIT: Duration = Duration::from_secs(2);
/// Unknown or expired sessions one client address may send in a minute.
const FAILURES_PER_MINUTE: u32 = 30;
/// The longest token looked up (longer is no session).
const TOKEN_MAX: usize = 512;

impl Sessions {
    /// No platform sessions (`--auth token`).
    pub fn none() -> Sessions {
        Sessions {
            known: Default::default(),
            lookups: Arc::new(tokio::sync::Semaphore::new(LOOKUPS)),
            jobs: None,
            failures: Default::default(),
            refreshing: Default::default(),
        }
    }

    /// The lookup threads for the platform database at `url`.
    pub fn start(auth: &Auth) -> crate::error::Result<Sessions> {
        let Auth::Platform { url, schema } = auth else {
            return Ok(Sessions::none());
        };
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Lookup>(LOOKUPS);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..LOOKUPS {
            let (queue, url, schema) = (queue.clone(), url.clone(), schema.clone());
            std::thread::Builder::new()
                .name(format!("session-lookup-{n}"))
                .spawn(move || {
                    let mut connection = None;
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if job.answer.is_closed() || job.deadline.is_past() {
                            continue;
                        }
                        // A panic (a row of an unexpected shape) must not
                        // take a lookup thread with it: the connection is
                        // dropped, the sign-in refused, the thread goes on.
                        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            look_up(&mut connection, &url, &schema, &job.hash, &job.deadline)
                        }))
                        .unwrap_or_else(|_| {
                            connection = None;
                            Err(cannot_check())
                        });
                        let _ = job.answer.send(found);
                    }
                })
                .map_err(|e| {
                    crate::error::Error::RunFailed(format!("cannot start the session lookups: {e}"))
                })?;
        }
        Ok(Sessions {
            jobs: Some(jobs),
            ..Sessions::none()
        })
    }

    /// The reader of a session, and whether it should be checked again.
    fn remembered(&self, hash: &str) -> Option<(Signed, bool)> {
        let known = self.known.lock().ok()?;
        let now = Instant::now();
        known
            .get(hash)
            .filter(|r| now < r.usable_until)
            .map(|r| (r.signed.clone(), now >= r.fresh_until))
    }

    fn remember(&self, hash: &str, signed: &Signed, expires: Instant) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= REMEMBERED_MAX {
                known.clear();
            }
            let now = Instant::now();
            known.insert(
                hash.to_string(),
                Remembered {
                    signed: signed.clone(),
                    fresh_until: (now + REMEMBERED).min(expires),
                    usable_until: (now + REMEMBERED + STALE_SERVED).min(expires),
                },
            );
        }
    }

    fn forget(&self, hash: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(hash);
        }
    }

    /// Whether `address` has sent too many unknown sessions this minute.
    fn refuses(&self, address: IpAddr) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return false;
        };
        failures.get(&address).is_some_and(|(n, since)| {
            since.elapsed() < Duration::from_secs(60) && *n >= FAILURES_PER_MINUTE
        })
    }

    fn failed(&self, address: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() >= REMEMBERED_MAX {
                failures.retain(|_, (_, since)| since.elapsed() < Duration::from_secs(60));
                if failures.len() >= REMEMBERED_MAX {
                    failures.clear();
                }
            }
            let entry = failures.entry(address).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= Duration::from_secs(60) {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    /// Queues a lookup once a permit is free (waiting at most `wait`); its
    /// answer, or None when no turn came or the lookups are not running.
    async fn look_up(
        &self,
        hash: &str,
        deadline: &Deadline,
        wait: Duration,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<Found, Refusal>>> {
        let jobs = self.jobs.as_ref()?;
        let permit = tokio::time::timeout(wait, self.lookups.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The queue holds as many lookups as there are permits: never full.
        jobs.try_send(Lookup {
            hash: hash.to_string(),
            deadline: deadline.clone(),
            answer,
            _permit: permit,
        })
        .ok()?;
        Some(answered)
    }
}

/// A sign-in whose session could not be looked up (in time, or at all).
fn cannot_check() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the session cannot be checked right now; try again",
    )
}

/// The `Authorization: Bearer …` secret, if any.
fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret)
}

async fn platform(app: Arc<App>, mut request: Request, next: Next) -> Response {
    let secret = bearer(&request)
        .or_else(|| cookie(&request, SESSION_COOKIE))
        .map(str::trim)
        .filter(|s| {
            !s.is_empty() && s.len() <= TOKEN_MAX && s.chars().all(|c| c.is_ascii_graphic())
        })
        .map(str::to_string);
    let Some(secret) = secret else {
        return unauthorized("sign in to the platform: a bearer token or the session cookie");
    };
    let hash: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let session_id = hash[..12].to_string();
    let address = client_address(&request);
    let sessions = &app.sessions;
    let reader = match sessions.remembered(&hash) {
        Some((reader, stale)) => {
            if stale {
                check_again(app.clone(), hash);
            }
            reader
        }
        None => {
            if sessions.refuses(address) {
                return Refusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many unknown sessions from your address; wait a minute and sign in again",
                )
                .into_response();
            }
            let deadline = Deadline::after(app.config.timeout);
            let busy = || cannot_check().into_response();
            let Some(answered) = sessions.look_up(&hash, &deadline, LOOKUP_WAIT).await else {
                return busy();
            };
            match tokio::time::timeout(deadline.remaining(), answered).await {
                Ok(Ok(Ok(Some((reader, expires))))) => {
                    sessions.remember(&hash, &reader, expires);
                    reader
                }
                Ok(Ok(Ok(None))) => {
                    sessions.failed(address);
                    return unauthorized("the session is unknown or expired; sign in again");
                }
                Ok(Ok(Err(refusal))) => return refusal.into_response(),
                _ => return busy(),
            }
        }
    };
    let Signed { user, reader } = reader;
    let who = Who(match &reader {
        Reader::Operator => format!("user {user} operator (session {session_id})"),
        Reader::Customer(tenant) => {
            format!("user {user} customer of {tenant} (session {session_id})")
        }
    });
    if let Reader::Customer(tenant) = &reader {
        match customer_uri(request.uri(), *tenant) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(refusal) => {
                // Who was refused is in the access line too.
                let mut response = refusal.into_response();
                response.extensions_mut().insert(who);
                return response;
            }
        }
    }
    request.extensions_mut().insert(reader);
    let mut response = super::READER
        .scope(format!("user {user}"), next.run(request))
        .await;
    response.extensions_mut().insert(who);
    response
}

/// The client's address as limits count it (`client::identify` put it
/// there; an IPv6 client by its /64).
fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<super::client::Client>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.bucket())
}

/// Checks a remembered session again without holding up its reader: a
/// session ended on the platform is forgotten, one still open is trusted
/// anew; a check that cannot be made now leaves it as it was.
fn check_again(app: Arc<App>, hash: String) {
    {
        let Ok(mut refreshing) = app.sessions.refreshing.lock() else {
            return;
        };
        if !refreshing.insert(hash.clone()) {
            return;
        }
    }
    tokio::spawn(async move {
        let deadline = Deadline::after(app.config.timeout);
        // Only a free turn: sign-ins of readers not remembered come first.
        if let Some(answered) = app.sessions.look_up(&hash, &deadline, Duration::ZERO).await {
            match tokio::time::timeout(deadline.remaining(), answered).await {
                Ok(Ok(Ok(None))) => app.sessions.forget(&hash),
                Ok(Ok(Ok(Some((reader, expires))))) => {
                    app.sessions.remember(&hash, &reader, expires)
                }
                _ => {}
            }
        }
        if let Ok(mut refreshing) = app.sessions.refreshing.lock() {
            refreshing.remove(&hash);
        }
    });
}

/// The session's reader, if the session is known and not expired, from
/// the lookup thread's own connection (made or made again here); the
/// statement and any lock it waits for end at the request's deadline.
fn look_up(
    connection: &mut Option<(postgres::Client, String)>,
    url: &DbUrl,
    schema: &str,
    hash: &str,
    deadline: &Deadline,
) -> Result<Found, Refusal> {
    let mut row = None;
    // A broken connection is replaced once.
    for attempt in 0..2 {
        if connection.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            let mut client = url.connect_reporting("callrollup-serve-sessions")?;
            let statement = session_statement(&mut client, schema)?;
            *connection = Some((client, statement));
        }
        // What is left once connected (a connection can take seconds).
        let left = deadline.remaining().as_millis();
        if left == 0 {
            return Err(cannot_check());
        }
        let (live, statement) = connection.as_mut().expect("connected above");
        let limited = live.batch_execute(&format!(
            "SET statement_timeout = {left}; SET lock_timeout = {left}"
        ));
        match limited.and_then(|()| live.query_opt(statement.as_str(), &[&hash])) {
            Ok(found) => {
                row = found;
                break;
            }
            Err(e) if attempt == 0 && live.is_closed() => {
                crate::log::info(&format!(
                    "serve: the sessions connection failed ({e}); reconnecting"
                ));
                *connection = None;
            }
            Err(e) => {
                // A timeout, a lock, a broken server: said in the log.
                crate::log::info(&format!("serve: a session lookup failed: {e}"));
                return Err(cannot_check());
            }
        }
    }
    let Some(row) = row else {
        return Ok(None);
    };
    // The platform's columns as they are: a NULL or an unexpected type is
    // no session, never a panic.
    let (Ok(user), Ok(role), Ok(tenant), Ok(expires)) = (
        row.try_get::<_, uuid::Uuid>("user_id"),
        row.try_get::<_, Option<String>>("role"),
        row.try_get::<_, Option<uuid::Uuid>>("tenant_id"),
        row.try_get::<_, chrono::DateTime<chrono::Utc>>("expires_at"),
    ) else {
        crate::log::info("serve: a session row of an unexpected shape was refused");
        return Ok(None);
    };
    let reader = match (role.as_deref().unwrap_or_default(), tenant) {
        ("operator", _) => Reader::Operator,
        ("customer", Some(tenant)) => Reader::Customer(tenant),
        // Any other role, or a customer without a tenant: nothing.
        _ => return Ok(None),
    };
    let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    Ok(Some((Signed { user, reader }, Instant::now() + left)))
}

/// The statement that finds a session: the function deploy/roles.sql
/// makes when it is there (a sessions role with no grant on the tables
/// can call nothing else), else the tables themselves (a superuser, a
/// platform without the roles file).
fn session_statement(client: &mut postgres::Client, schema: &str) -> crate::error::Result<String> {
    let has_function: bool = client
        .query_one(sql::SERVE_SESSION_LOOKUP_EXISTS, &[&schema])?
        .get(0);
    let text = if has_function {
        sql::SERVE_SESSION_LOOKUP
    } else {
        sql::SERVE_SESSION
    };
    Ok(sql::render(text, &[("schema", schema)]))
}

/// What a customer may ask for: its own tenant's page, and costs of its
/// own tenant (the `tenant` parameter set to it); every other page 403.
fn customer_uri(uri: &Uri, tenant: uuid::Uuid) -> Result<Uri, Refusal> {
    let own = tenant.to_string();
    let forbidden = || Refusal::new(StatusCode::FORBIDDEN, "this page is not for your tenant");
    let path = uri.path();
    if let Some(id) = path.strip_prefix("/tenants/") {
        return if id.eq_ignore_ascii_case(&own) {
            Ok(uri.clone())
        } else {
            Err(forbidden())
        };
    }
    if !matches!(
        path,
        "/" | "/costs" | "/costs.csv" | "/costs.json" | "/costs.xlsx"
    ) {
        return Err(forbidden());
    }
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    if pairs
        .iter()
        .any(|(k, v)| k == "tenant" && !v.is_empty() && !v.eq_ignore_ascii_case(&own))
    {
        return Err(forbidden());
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "tenant") {
        query.append_pair(k, v);
    }
    query.append_pair("tenant", &own);
    let path = if path == "/" { "/costs" } else { path };
    format!("{path}?{}", query.finish())
        .parse()
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "the address cannot be read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_kept_to_its_own_tenant() {
        let own: uuid::Uuid = "a0000000-0000-0000-0000-000000000002".parse().unwrap();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let allowed = customer_uri(&uri("/costs?month=2026-03"), own).unwrap();
        assert_eq!(
            allowed.to_string(),
            "/costs?month=2026-03&tenant=a0000000-0000-0000-0000-000000000002"
        );
        assert!(customer_uri(
            &uri("/costs.csv?tenant=a0000000-0000-0000-0000-000000000001"),
            own
        )
        .is_err());
        assert!(customer_uri(&uri("/tenants/a0000000-0000-0000-0000-000000000002"), own).is_ok());
        assert!(customer_uri(&uri("/tenants/a0000000-0000-0000-0000-000000000001"), own).is_err());
        for page in ["/errors", "/runs", "/other"] {
            assert_eq!(
                customer_uri(&uri(page), own).unwrap_err().status,
                StatusCode::FORBIDDEN
            );
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
