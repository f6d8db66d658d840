//! Serving the API on its listener, so that no client can hold the daemon's
//! connections (and file descriptors) hostage.
//!
//! # Invariants
//! - A request's headers must arrive within `api.header_timeout_s` (hyper's
//!   header read timeout), its body within `api.body_timeout_s` (a deadline
//!   on the whole body, not per read: a trickle does not extend it; 408),
//!   and a connection with no bytes either way for `api.idle_timeout_s` is
//!   closed. Half-open connections are gone within seconds.
//! - At most [`Limits::max_connections`] connections are served at once,
//!   sized below the open-file limit (raised to the hard limit at start);
//!   one more is answered `503 busy` at once and closed, never left hanging
//!   or failing later with "too many open files".
//! - On shutdown no connection is accepted any more; requests in flight
//!   finish (the daemon bounds the wait).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::ApiConfig;

/// File descriptors kept aside for everything but connections: the
/// database (three connections, their WAL and shared memory), photo
/// files, the printer, scanners, the sync connections, logs.
pub const FD_RESERVE: u64 = 64;

/// The connection limits, as `/healthz` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    /// The open-file limit the daemon runs with.
    pub open_files: u64,
    pub max_connections: usize,
    #[serde(skip)]
    pub header_timeout: Duration,
    #[serde(skip)]
    pub body_timeout: Duration,
    #[serde(skip)]
    pub idle_timeout: Duration,
}

impl Limits {
    /// Raises the soft open-file limit to the hard one and sizes the
    /// connection cap from it (unless `api.max_connections` sets it).
    pub fn at_start(api: &ApiConfig) -> Limits {
        let open_files = raise_open_files_limit();
        let derived = open_files.saturating_sub(FD_RESERVE) * 3 / 4;
        let max_connections = match api.max_connections {
            0 => usize::try_from(derived.max(8)).unwrap_or(usize::MAX),
            n => n as usize,
        };
        Limits {
            open_files,
            max_connections,
            header_timeout: Duration::from_secs(api.header_timeout_s.into()),
            body_timeout: Duration::from_secs(api.body_timeout_s.into()),
            idle_timeout: Duration::from_secs(api.idle_timeout_s.into()),
        }
    }
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; returns the limit in
/// effect.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Connections being served now.
#[derive(Debug, Default)]
pub struct Open(AtomicUsize);

impl Open {
    pub fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets the requests in
/// flight finish.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    limits: Limits,
    open: Arc<Open>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(&e, &mut last_accept_warning).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(tcp));
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (io, activity) = Watched::new(tcp);
        let body_timeout = limits.body_timeout;
        let svc = app
            .clone()
            .map_request(move |req: Request<hyper::body::Incoming>| {
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                Request::from_parts(parts, Body::new(Deadline::new(body, body_timeout)))
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        let (idle, open) = (limits.idle_timeout, open.clone());
        open.0.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                () = activity.idle_for(idle) => {
                    tracing::debug!(%peer, "closed an idle connection");
                }
            }
            open.0.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Out of file descriptors (or another accept failure): the pending
/// connection stays in the kernel's queue; wait a moment rather than spin.
async fn accept_failed(e: &std::io::Error, last_warning: &mut Option<Instant>) {
    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        tracing::warn!(error = %e, "cannot accept a connection (out of file descriptors?); retrying");
        *last_warning = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Answers a connection beyond the cap with 503 `busy` and closes it.
async fn refuse_busy(mut tcp: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"busy","message":"the station is serving too many connections; try again in a moment"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// When a connection last moved a byte, for the idle timeout.
#[derive(Debug, Clone)]
struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte moved for `idle`.
    async fn idle_for(self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let quiet = self.started.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

/// A TCP stream that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl Watched {
    fn new(inner: TcpStream) -> (Watched, Activity) {
        let activity = Activity {
            started: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        };
        (
            Watched {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The body did not arrive within `api.body_timeout_s`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// A request body with a deadline for the whole of it.
struct Deadline<B> {
    inner: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> Deadline<B> {
    fn new(inner: B, limit: Duration) -> Deadline<B> {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = axum::body::Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
