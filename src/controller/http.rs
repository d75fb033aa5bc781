//! `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::telemetry::Metrics;

/// What the endpoints report.
pub struct Health {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Ready: watches synced (leader) or standing by (non-leader).
    pub ready: AtomicBool,
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

async fn handle(
    health: Arc<Health>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = "text/plain; charset=utf-8";
    Ok(match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            health.metrics.encode(),
        ),
        (&hyper::Method::GET, "/healthz") => respond(StatusCode::OK, text, "ok\n".into()),
        (&hyper::Method::GET, "/readyz") => {
            if health.ready.load(Ordering::Acquire) {
                respond(StatusCode::OK, text, "ok\n".into())
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    "watches not synced\n".into(),
                )
            }
        }
        _ => respond(StatusCode::NOT_FOUND, text, "not found\n".into()),
    })
}

/// Binds `addr` (failing fast if it cannot) and serves until `stop` fires.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(health.clone(), req));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
            });
        }
    }))
}
