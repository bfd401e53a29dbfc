//! What one client can hold: connections, time to send a request, memory for bodies.
//!
//! The intake runs inside `cairn run`, and any local user can connect to it. Without a cap,
//! idle connections would use up the process's file descriptors (and the durable buffer could
//! no longer open a segment); without timeouts, a client sending a byte every few seconds
//! would keep its connection and its buffered body forever; without a byte budget, a hundred
//! large bodies sent at once would cost hundreds of megabytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections served at once by default. The soft descriptor limit is raised to the hard one
/// at start (often 1,048,576, at least 4,096 on Debian), so this leaves most descriptors to
/// the rest of the agent.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How much one client may hold, and for how long.
#[derive(Debug, Clone)]
pub struct IntakeLimits {
    /// Connections served at once; more wait in the kernel's backlog, costing no descriptor.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed, so idle connections cannot
    /// keep every slot, the agent's own sender's included. The sender reconnects.
    pub idle_timeout: Duration,
    /// The request line and headers must arrive within this, however slowly they trickle.
    pub header_timeout: Duration,
    /// A request body must arrive within this; 408 otherwise.
    pub body_timeout: Duration,
    /// Request bodies being received or handled at once; beyond, 503 with `Retry-After`.
    pub max_bodies: usize,
    /// Bytes all bodies in flight may reserve together (a body reserves its
    /// `Content-Length`, or the largest body allowed when chunked); beyond, 503.
    pub max_body_bytes_total: usize,
    /// The largest body accepted; 413 beyond.
    pub max_body_bytes: usize,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_bodies: 16,
            max_body_bytes_total: 64 << 20,
            // Compressed bodies are smaller than what they expand to, so the raw body never
            // needs to be much over the decompressed limit; the slack covers framing.
            max_body_bytes: crate::wire::MAX_PAYLOAD_BYTES + 1_000_000,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `stop` resolves, then lets requests in
/// flight finish (for at most `drain`). The agent's local API is served by it too.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &IntakeLimits,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut warned_at: Option<Instant> = None;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if warned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "local intake: connection limit reached; new connections wait"
                    );
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut stop => break,
                }
            }
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "local intake: accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = LimitedIo {
            stream,
            _permit: permit,
            idle_timeout: limits.idle_timeout,
            idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        };
        let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Timeouts, resets and clients that go away end here; none is the intake's fault.
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "local intake: connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("local intake: requests still in flight at shutdown were cut");
    }
}

/// Bodies in flight and the bytes they may reserve.
pub(crate) struct BodyBudget {
    bodies: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    limits: IntakeLimits,
}

impl BodyBudget {
    pub(crate) fn new(limits: &IntakeLimits) -> Self {
        BodyBudget {
            bodies: Arc::new(Semaphore::new(limits.max_bodies.max(1))),
            bytes: Arc::new(Semaphore::new(limits.max_body_bytes_total.max(1))),
            limits: limits.clone(),
        }
    }
}

/// Receives the body of a request (after `guard` accepted its token, so an unauthenticated
/// client never gets a byte buffered) within the budget and the body timeout, and hands the
/// handler the complete body. The permits are held until the handler answers, so they also
/// bound the memory decoding and parsing use.
pub(crate) async fn bound_body(
    State(budget): State<Arc<BodyBudget>>,
    req: Request,
    next: Next,
) -> Response {
    let limits = &budget.limits;
    let headers = req.headers();
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => return status(StatusCode::BAD_REQUEST, "invalid Content-Length".into()),
        },
        None => None,
    };
    if !chunked && declared.unwrap_or(0) == 0 {
        return next.run(req).await;
    }
    if let Some(n) = declared.filter(|&n| n > limits.max_body_bytes) {
        let (_, body) = req.into_parts();
        drain(body, limits.body_timeout).await;
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {n} bytes, over the limit of {} bytes",
                limits.max_body_bytes
            ),
        );
    }
    let reserve = declared.unwrap_or(limits.max_body_bytes).max(1);
    let Ok(_body_permit) = budget.bodies.clone().try_acquire_owned() else {
        return busy(format!(
            "{} request bodies are already being received",
            limits.max_bodies
        ));
    };
    let Ok(_byte_permits) = u32::try_from(reserve)
        .ok()
        .and_then(|n| budget.bytes.clone().try_acquire_many_owned(n).ok())
        .ok_or(())
    else {
        return busy(format!(
            "request bodies in flight already hold most of the {} bytes allowed",
            limits.max_body_bytes_total
        ));
    };
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over the limit of {} bytes",
                    limits.max_body_bytes
                ),
            )
        }
        Ok(Err(e)) => {
            return status(
                StatusCode::BAD_REQUEST,
                format!("reading the body failed: {e}"),
            )
        }
        Err(_) => {
            let mut resp = status(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    limits.body_timeout.as_secs()
                ),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Reads and discards what a client is still sending, so that it sees the answer instead of
/// a reset of a connection closed with unread data.
async fn drain(body: Body, within: Duration) {
    let mut body = body;
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

fn busy(detail: String) -> Response {
    let mut resp = status(StatusCode::SERVICE_UNAVAILABLE, detail);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn status(code: StatusCode, detail: String) -> Response {
    crate::http::error(code, detail).into_response()
}

/// A connection that gives its slot back when dropped, and ends when idle too long.
pub(crate) struct LimitedIo {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl LimitedIo {
    /// A response still streaming (the agent's `stream-logs`) keeps the connection busy even
    /// though the client has nothing more to say.
    fn busy_if_written(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.idle
                .as_mut()
                .reset(tokio::time::Instant::now() + self.idle_timeout);
        }
    }
}

impl AsyncRead for LimitedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.idle
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle_timeout);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for LimitedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.busy_if_written(&written);
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.busy_if_written(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
