//! Who read what: one access line per request, in the engine's log
//! format, written once its body has gone out (the bytes a streamed
//! download really sent, or that it was cut), never with a secret.

use std::time::Instant;

use axum::response::Response;

use super::{auth, client, params};

/// One line per request, in the engine's log format: who (an id of the
/// token or session, its role and tenant; never the secret), the method
/// and the path with its query (the `token` parameter's value left out),
/// the status, the bytes and the time; so an operator can answer "who
/// downloaded this tenant's costs". `/healthz` is not logged (probes).
pub async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = loggable_path(request.uri());
    let from = request
        .extensions()
        .get::<client::Client>()
        .map_or_else(|| "-".to_string(), |c| c.address.to_string());
    let response = next.run(request).await;
    if path == "/healthz" {
        return response;
    }
    let who = response
        .extensions()
        .get::<auth::Who>()
        .map_or("anonymous", |w| w.0.as_str());
    let line = format!(
        "access: {who} from {from} {method} {path} {}",
        response.status().as_u16()
    );
    // Written when the body has gone out (or was cut): a streamed
    // download's bytes are known only then. A HEAD's body is never sent:
    // not sending it is no cut.
    let head = method == axum::http::Method::HEAD;
    response.map(|body| {
        super::body::ended(body, move |bytes, whole| {
            crate::log::info(&format!(
                "{line} {bytes} bytes{} {:.3}s",
                if whole || head {
                    ""
                } else {
                    " (cut before its end)"
                },
                started.elapsed().as_secs_f64()
            ));
        })
    })
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
