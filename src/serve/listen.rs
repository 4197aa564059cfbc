//! How `serve` takes connections: the pages' listener and the health
//! probes' own, the limits on connections (all of them, and per client
//! address), each connection's clocks (`connection`), and the drain on
//! SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use super::client::{self, Proxies};
use super::connection;
use crate::error::{Error, Result};

/// Waits for SIGTERM or SIGINT.
pub async fn stop_signal() {
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

/// How a listener takes connections.
pub struct Listening {
    /// Connections open at once; past them, new ones wait to be accepted.
    connections: usize,
    /// Connections open at once from one client address that is not a
    /// trusted proxy's (one client cannot hold them all).
    per_client: usize,
    /// The time a client has to send a request's head once begun.
    pub head_timeout: Duration,
    /// How long an idle connection is kept for its next request: longer
    /// than the ingress in front keeps its connections to `serve` (60 s
    /// for ingress-nginx and AWS load balancers), so `serve` never closes
    /// one the ingress is about to use.
    idle_timeout: Duration,
}

/// The pages' listener.
pub const PAGES: Listening = Listening {
    connections: 256,
    per_client: 32,
    head_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(75),
};

/// The health listener (`--health-listen`): probes only, answered at once.
pub const HEALTH: Listening = Listening {
    connections: 32,
    per_client: 32,
    head_timeout: Duration::from_secs(5),
    idle_timeout: Duration::from_secs(5),
};

/// How long SIGTERM waits for the connections still open.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);

/// Takes connections until `stop` ends (never, for the health listener),
/// then stops taking them, lets every request in flight finish (each is
/// bounded by the request time limit) and returns.
pub async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    listening: Listening,
    proxies: Proxies,
    answer: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let connections = Arc::new(tokio::sync::Semaphore::new(listening.connections));
    // Connections open per client address.
    let per_client = super::counts::Counts::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            _ = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait, then go on.
                Err(e) => {
                    crate::log::info(&format!("serve: cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // A proxy's connections carry many clients: the proxy limits them.
        let counted = if proxies.trusts(peer.ip()) {
            None
        } else {
            match per_client.enter(client::bucket(peer.ip()), listening.per_client) {
                Ok(entered) => Some(entered),
                // Closed at once: this address holds its share already.
                Err(_) => continue,
            }
        };
        let _ = stream.set_nodelay(true);
        let clocks = connection::Clocks::new();
        let answering = clocks.clone();
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
                .layer(axum::middleware::from_fn(
                    move |request: axum::extract::Request, next: axum::middleware::Next| {
                        let answering = answering.clone();
                        async move {
                            answering.request_began();
                            let answered = connection::Answered(answering);
                            let response = next.run(request).await;
                            response
                                .map(|body| super::body::ended(body, move |_, _| drop(answered)))
                        }
                    },
                )),
        );
        let stream = connection::Clocked {
            stream,
            clocks: clocks.clone(),
        };
        // The clocks below end slow heads and idle connections.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let (head, idle) = (listening.head_timeout, listening.idle_timeout);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = clocks.overrun(head, idle, answer) => {}
            }
            drop(permit);
            drop(counted);
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

/// Binds `listen`, or says which option to change.
pub async fn bind(listen: &str, option: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::usage(format!(
            "cannot listen on {listen} ({e}); pick another {option} ADDR:PORT"
        ))
    })
}
