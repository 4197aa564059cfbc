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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{App, Refusal};
use crate::db::DbUrl;
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

    /// The line printed once at start.
    pub fn greeting(&self, address: SocketAddr) -> String {
        match self {
            Auth::Token {
                token,
                printed: true,
            } => format!("http://{address}/?token={token}"),
            Auth::Token { printed: false, .. } => format!(
                "http://{address}/ (the token of --token-file is not printed: send it as `Authorization: Bearer <token>`, or add token=<token> to the first page's address once to set the cookie)"
            ),
            Auth::Platform { .. } => format!(
                "http://{address}/ (platform sessions: a bearer token or the `{SESSION_COOKIE}` cookie)"
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

pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match &app.config.auth {
        Auth::Token { token, .. } => {
            let who = Who(format!("token {}", secret_id(token)));
            // A header never lands in a proxy's access log as a query does.
            if bearer(&request).is_some_and(|t| same_secret(t, token)) {
                let mut response = next.run(request).await;
                response.extensions_mut().insert(who);
                return response;
            }
            if query_token(request.uri()).is_some_and(|t| same_secret(&t, token)) {
                let mut response = next.run(request).await;
                response.extensions_mut().insert(who);
                let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
                return response;
            }
            if cookie(&request, TOKEN_COOKIE).is_some_and(|t| same_secret(t, token)) {
                let mut response = next.run(request).await;
                response.extensions_mut().insert(who);
                return response;
            }
            unauthorized("open the link `callrollup serve` printed (it carries ?token=…), or send the token as `Authorization: Bearer`")
        }
        Auth::Platform { .. } => platform(app.clone(), request, next).await,
    }
}

/// The platform's sessions as `serve` checks them: one connection, used by
/// one lookup at a time (a flood of made-up tokens costs one query each,
/// never a connection each), and the readers found, remembered for at most
/// `REMEMBERED` (and never past their session's end).
pub struct Sessions {
    client: std::sync::Mutex<Option<postgres::Client>>,
    known: std::sync::Mutex<std::collections::HashMap<String, (Signed, std::time::Instant)>>,
    lookups: tokio::sync::Semaphore,
}

/// How long a session found stays trusted without asking again: a session
/// ended on the platform is refused here at most this much later.
const REMEMBERED: std::time::Duration = std::time::Duration::from_secs(30);
/// Sessions remembered at once (then forgotten all together).
const REMEMBERED_MAX: usize = 10_000;
/// Lookups waiting for the database at once; more are a 503.
const LOOKUPS: usize = 2;
/// The longest token looked up (longer is no session).
const TOKEN_MAX: usize = 512;

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            client: std::sync::Mutex::new(None),
            known: std::sync::Mutex::new(std::collections::HashMap::new()),
            lookups: tokio::sync::Semaphore::new(LOOKUPS),
        }
    }
}

impl Sessions {
    fn remembered(&self, hash: &str) -> Option<Signed> {
        let known = self.known.lock().ok()?;
        known
            .get(hash)
            .filter(|(_, until)| std::time::Instant::now() < *until)
            .map(|(reader, _)| reader.clone())
    }

    fn remember(&self, hash: String, reader: Signed, until: std::time::Instant) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= REMEMBERED_MAX {
                known.clear();
            }
            known.insert(hash, (reader, until));
        }
    }
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
    let reader = match app.sessions.remembered(&hash) {
        Some(reader) => reader,
        None => {
            let Ok(_lookup) = app.sessions.lookups.try_acquire() else {
                return Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sign-ins at once; try again",
                )
                .into_response();
            };
            let lookup = app.clone();
            let found = tokio::time::timeout(
                app.config.timeout,
                tokio::task::spawn_blocking(move || reader_of(&lookup, &hash)),
            )
            .await;
            match found {
                Ok(Ok(Ok(Some(reader)))) => reader,
                Ok(Ok(Ok(None))) => {
                    return unauthorized("the session is unknown or expired; sign in again")
                }
                Ok(Ok(Err(refusal))) => return refusal.into_response(),
                _ => {
                    return Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the session cannot be checked right now; try again",
                    )
                    .into_response()
                }
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
    let mut response = next.run(request).await;
    response.extensions_mut().insert(who);
    response
}

/// The session's reader, if the session is known and not expired; found
/// ones are remembered (`Sessions`).
fn reader_of(app: &App, hash: &str) -> Result<Option<Signed>, Refusal> {
    let Auth::Platform { url, schema } = &app.config.auth else {
        return Ok(None);
    };
    let sessions = &app.sessions;
    let mut client = sessions.client.lock().map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot check the session",
        )
    })?;
    let statement = sql::render(sql::SERVE_SESSION, &[("schema", schema)]);
    // The connection is kept; a broken one is replaced once.
    let mut row = None;
    for attempt in 0..2 {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = Some(url.connect_reporting("callrollup-serve-sessions")?);
        }
        let live = client.as_mut().expect("connected above");
        match live.query_opt(&statement, &[&hash]) {
            Ok(found) => {
                row = found;
                break;
            }
            Err(e) if attempt == 0 => {
                crate::log::info(&format!(
                    "serve: the sessions connection failed ({e}); reconnecting"
                ));
                *client = None;
            }
            Err(e) => return Err(crate::error::Error::from(e).into()),
        }
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let user: uuid::Uuid = row.get("user_id");
    let role: String = row.get("role");
    let tenant: Option<uuid::Uuid> = row.get("tenant_id");
    let expires: chrono::DateTime<chrono::Utc> = row.get("expires_at");
    let reader = match (role.as_str(), tenant) {
        ("operator", _) => Reader::Operator,
        ("customer", Some(tenant)) => Reader::Customer(tenant),
        // Any other role, or a customer without a tenant: nothing.
        _ => return Ok(None),
    };
    let left = (expires - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        .min(REMEMBERED);
    let signed = Signed { user, reader };
    sessions.remember(
        hash.to_string(),
        signed.clone(),
        std::time::Instant::now() + left,
    );
    Ok(Some(signed))
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
