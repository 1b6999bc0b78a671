//! Limits on every phase of a connection and on requests, so that clients that never
//! finish a handshake, trickle their headers, sit idle or flood the server cannot exhaust
//! it: the hardening Go's `net/http` server and the Kubernetes generic API server apply,
//! plus a cap on open connections.
//!
//! Each connection has a phase — TLS handshake, waiting for a request head, serving, idle
//! between requests — and a deadline for the phase it is in; a watchdog in the
//! connection's own task closes it when the deadline passes. At the connection cap the
//! connection that has been waiting longest without a request in flight is closed to make
//! room, so a flood of silent connections cannot lock new clients out.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::apiserver_metrics::{Counted, RequestLine};
use crate::error::ApiError;
use crate::metrics::SelfMetrics;

/// Timeouts and caps of the serving layer. The defaults follow Go's `net/http` server as
/// the Kubernetes generic API server configures it (1 MiB of request headers, 90 s idle
/// keep-alive, `--max-requests-inflight=400`, `--request-timeout=1m`), with shorter
/// handshake and header timeouts and a cap on open connections.
#[derive(Debug, Clone)]
pub struct ServingLimits {
    /// Time allowed from accepting a connection to the end of its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed to receive a complete request head: from the end of the handshake for
    /// the first request, from its first byte for later HTTP/1.1 requests.
    pub request_header_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    pub idle_timeout: Duration,
    /// The longest a request may take (a caller's shorter `timeout=` wins); past it the
    /// answer is a 504 `Timeout` Status.
    pub request_timeout: Duration,
    /// Open connections at most (0: no limit). At the limit a new connection closes the
    /// one that has waited longest without a request in flight, or is refused when every
    /// connection is serving.
    pub max_connections: usize,
    /// Requests served at once at most (0: no limit); past it the answer is a 429
    /// `TooManyRequests` Status with `Retry-After`. Health probes are not counted.
    pub max_requests_inflight: usize,
    /// Largest request head accepted (HTTP/1.1 request line and headers; the HTTP/2
    /// header list). HTTP/1.1 clients above it get 431. As in Go, the bytes are what
    /// count rather than the number of header fields, up to [`HTTP1_MAX_HEADER_FIELDS`]
    /// of them on HTTP/1.1.
    pub max_request_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_streams_per_connection: u32,
}

impl Default for ServingLimits {
    fn default() -> Self {
        ServingLimits {
            tls_handshake_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_requests_inflight: 400,
            max_request_header_bytes: 1 << 20,
            http2_max_streams_per_connection: 250,
        }
    }
}

/// The most header fields an HTTP/1.1 request may carry, whatever its byte budget (more are
/// refused as too large, 431). hyper's parser allocates room for this many fields, 64 bytes
/// each, for every request head it parses, and the 24,576 an `http::HeaderMap` can hold at
/// most (past which the parser panics) made that 1.5 MB and several microseconds per
/// request. 2,048 leave room for an aggregator's `X-Remote-Group` header per group of a
/// user in very many groups.
pub(crate) const HTTP1_MAX_HEADER_FIELDS: usize = 2_048;

impl ServingLimits {
    /// The budget of an HTTP/1.1 request head in bytes: `max_request_header_bytes`, and at
    /// least the 8 KiB hyper reads at a time.
    pub(crate) fn http1_header_bytes(&self) -> usize {
        self.max_request_header_bytes.max(8192)
    }
}

/// How long a connection asked to close (idle, evicted) may take to finish before it is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// An HTTP/1.1 request body of at most this declared size is read (and thrown away) before
/// the 413 answer, so that its client sees the answer instead of a reset connection. Larger or
/// unsized bodies are not read at all: a client waiting for `100 Continue` gets the 413
/// instead and sends nothing.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// The most of a GET request's body read (and thrown away) over HTTP/1.1 to keep its
/// connection open, as Go's server reads at most this much of a body its handler left
/// unread (`maxPostHandlerReadBytes`) before closing the connection instead.
const GET_BODY_DISCARD_LIMIT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Handshake = 0,
    Head = 1,
    Idle = 2,
    Serving = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Handshake,
            1 => Phase::Head,
            2 => Phase::Idle,
            _ => Phase::Serving,
        }
    }
}

/// Why the server closed a connection, as counted in the self-metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    HandshakeTimeout,
    HeaderTimeout,
    IdleTimeout,
    Evicted,
}

impl CloseReason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            CloseReason::HandshakeTimeout => "tls_handshake_timeout",
            CloseReason::HeaderTimeout => "request_header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
        }
    }
}

/// One open connection's phase, shared by its I/O, its requests and its watchdog.
pub(crate) struct ConnState {
    epoch: std::time::Instant,
    phase: AtomicU8,
    /// When the current phase started, in nanoseconds since `epoch`.
    since: AtomicU64,
    serving: AtomicUsize,
    http2: AtomicBool,
    evicted: AtomicBool,
    wake: Notify,
    /// The answers of this connection's requests that hold their in-flight seats, each with
    /// its request's deadline, when the watchdog takes the seat back.
    held: Mutex<Vec<(Instant, Weak<HeldAnswer>)>>,
    /// When the watchdog wakes next, in nanoseconds since `epoch` (0: not known). An
    /// answer's deadline after it needs no wake-up: the watchdog sees it then.
    watching_until: AtomicU64,
}

impl ConnState {
    fn new(epoch: std::time::Instant) -> ConnState {
        let s = ConnState {
            epoch,
            phase: AtomicU8::new(Phase::Handshake as u8),
            since: AtomicU64::new(0),
            serving: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
            held: Mutex::new(Vec::new()),
            watching_until: AtomicU64::new(0),
        };
        s.enter(Phase::Handshake);
        s
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: Phase) {
        self.since.store(self.now_nanos(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// The TLS handshake is done; the first request head is awaited.
    pub(crate) fn handshake_done(&self, http2: bool) {
        self.http2.store(http2, Ordering::Relaxed);
        self.enter(Phase::Head);
    }

    /// Bytes arrived. On an idle HTTP/1.1 connection they start the next request head,
    /// which must then be complete within the header timeout. (HTTP/2 connections carry
    /// pings and window updates between requests, so for them only streams count.)
    fn on_read(&self) {
        if !self.http2.load(Ordering::Relaxed)
            && self.serving.load(Ordering::Acquire) == 0
            && self
                .phase
                .compare_exchange(
                    Phase::Idle as u8,
                    Phase::Head as u8,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.since.store(self.now_nanos(), Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// A request head arrived; the returned guard marks the request finished when dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.serving.fetch_add(1, Ordering::AcqRel);
        self.phase.store(Phase::Serving as u8, Ordering::Release);
        RequestGuard { conn: self.clone() }
    }

    /// The time of `since` as a tokio instant.
    fn instant_at(&self, nanos: u64) -> Instant {
        Instant::from_std(self.epoch + Duration::from_nanos(nanos))
    }

    /// When the watchdog must look again, and what closes the connection then if nothing
    /// changed.
    fn next_check(&self, limits: &ServingLimits) -> (Instant, Option<CloseReason>) {
        let since = self.instant_at(self.since.load(Ordering::Relaxed));
        if self.serving.load(Ordering::Acquire) > 0 {
            // A request that finishes leaves the connection idle from then on, so looking
            // again one idle timeout from now is never late.
            return (Instant::now() + limits.idle_timeout, None);
        }
        match self.phase() {
            Phase::Handshake => (
                since + limits.tls_handshake_timeout,
                Some(CloseReason::HandshakeTimeout),
            ),
            Phase::Head => (
                since + limits.request_header_timeout,
                Some(CloseReason::HeaderTimeout),
            ),
            Phase::Idle => (since + limits.idle_timeout, Some(CloseReason::IdleTimeout)),
            Phase::Serving => (Instant::now() + limits.idle_timeout, None),
        }
    }

    /// Whether this connection may be closed to make room: nothing in flight.
    fn evictable(&self) -> Option<u64> {
        (self.serving.load(Ordering::Acquire) == 0 && self.phase() != Phase::Serving)
            .then(|| self.since.load(Ordering::Relaxed))
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Weak<HeldAnswer>)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `answer` holds its seat until `deadline` at most. Answers gone since (sent, or
    /// dropped with their streams) are forgotten here. The watchdog is woken only when this
    /// deadline comes before its next wake-up, which is at most a request timeout away: with
    /// one timeout for every request, a connection's answers wake it once a timeout at most,
    /// not once each.
    fn hold_until(&self, deadline: Instant, answer: &Arc<HeldAnswer>) {
        let mut held = self.lock_held();
        held.retain(|(_, a)| a.strong_count() > 0);
        held.push((deadline, Arc::downgrade(answer)));
        drop(held);
        let watching_until = self.watching_until.load(Ordering::Acquire);
        if watching_until == 0 || deadline < self.instant_at(watching_until) {
            self.wake.notify_one();
        }
    }

    /// The watchdog sleeps until `at`.
    fn watching_until(&self, at: Instant) {
        let nanos = at
            .into_std()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        self.watching_until.store(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Release,
        );
    }

    /// The earliest deadline of an answer that may still hold its seat.
    fn next_expiry(&self) -> Option<Instant> {
        self.lock_held()
            .iter()
            .filter(|(_, a)| a.strong_count() > 0)
            .map(|(at, _)| *at)
            .min()
    }

    /// Take back the seats of answers whose deadline is `now` or earlier, with what they
    /// had left to send; an answer whose seat was given back already is left to finish.
    fn expire_held(&self, now: Instant) {
        let mut due = Vec::new();
        self.lock_held().retain(|(at, a)| match a.upgrade() {
            Some(a) if *at <= now => {
                due.push(a);
                false
            }
            Some(_) => true,
            None => false,
        });
        for answer in due {
            let mut held = answer.lock().unwrap_or_else(|p| p.into_inner());
            let taken = if held.as_ref().is_some_and(|h| h.seat.is_some()) {
                held.take()
            } else {
                None
            };
            drop(held);
            drop(taken);
        }
    }
}

/// Marks a request finished when dropped (also when the connection goes away mid-request).
pub(crate) struct RequestGuard {
    conn: Arc<ConnState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.conn.serving.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.enter(Phase::Idle);
        }
    }
}

/// The open connections, for the connection cap and for draining at shutdown.
pub(crate) struct ConnTable {
    epoch: std::time::Instant,
    max: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    empty: Notify,
    /// Where the number of open connections is published as it changes.
    gauge: Option<Arc<crate::metrics::SelfMetrics>>,
}

/// A connection's place in the table, given up when dropped.
pub(crate) struct Slot {
    table: Arc<ConnTable>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        open.remove(&self.id);
        if let Some(m) = &self.table.gauge {
            m.set_open_connections(open.len());
        }
        if open.is_empty() {
            self.table.empty.notify_waiters();
        }
    }
}

impl ConnTable {
    #[cfg(test)]
    pub(crate) fn new(max: usize) -> Arc<ConnTable> {
        ConnTable::with_gauge(max, None)
    }

    /// A table that publishes its number of open connections to `gauge`.
    pub(crate) fn with_gauge(
        max: usize,
        gauge: Option<Arc<crate::metrics::SelfMetrics>>,
    ) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            epoch: std::time::Instant::now(),
            max,
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            empty: Notify::new(),
            gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Register a new connection. At the cap, the connection waiting longest without a
    /// request in flight is told to close and gives up its place; `None` when every open
    /// connection is serving.
    pub(crate) fn admit(self: &Arc<Self>) -> (Option<Slot>, bool) {
        let mut open = self.lock();
        let mut evicted = false;
        if self.max > 0 && open.len() >= self.max {
            let oldest = open
                .iter()
                .filter_map(|(id, c)| c.evictable().map(|since| (since, *id)))
                .min();
            let Some((_, victim)) = oldest else {
                return (None, false);
            };
            if let Some(c) = open.remove(&victim) {
                c.evicted.store(true, Ordering::Release);
                c.wake.notify_one();
                evicted = true;
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.epoch));
        open.insert(id, state.clone());
        (
            Some(Slot {
                table: self.clone(),
                id,
                state,
            }),
            evicted,
        )
    }

    /// Wait until no connection is open.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.empty.notified();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// I/O that tells its connection's state when bytes arrive.
pub(crate) struct TrackedIo<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> Self {
        TrackedIo { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What the watchdog decided.
pub(crate) enum Watch {
    /// Close now, for this reason.
    Close(CloseReason),
    /// Ask the connection to finish (GOAWAY, no more keep-alive) and drop it after a grace.
    Finish(CloseReason),
    /// Nothing to do yet.
    Continue,
}

/// Sleep until the connection's current deadline or a change, and say what to do.
pub(crate) async fn watch(state: &ConnState, limits: &ServingLimits) -> Watch {
    if state.evicted.load(Ordering::Acquire) {
        return Watch::Finish(CloseReason::Evicted);
    }
    let (at, reason) = state.next_check(limits);
    // An answer's deadline, when it comes first; and no later than a request timeout from
    // now, so that answers with deadlines after this wake-up need not wake the watchdog
    // (see `hold_until`).
    let until = state
        .next_expiry()
        .map_or(at, |e| e.min(at))
        .min(Instant::now() + limits.request_timeout);
    state.watching_until(until);
    tokio::select! {
        _ = tokio::time::sleep_until(until) => {}
        _ = state.wake.notified() => {
            state.watching_until.store(0, Ordering::Release);
            return Watch::Continue;
        }
    }
    state.watching_until.store(0, Ordering::Release);
    state.expire_held(Instant::now());
    if until < at {
        return Watch::Continue;
    }
    // Look again: the phase may have changed while sleeping.
    match state.next_check(limits) {
        (again, Some(r)) if again <= Instant::now() && Some(r) == reason => match r {
            CloseReason::IdleTimeout => Watch::Finish(r),
            _ => Watch::Close(r),
        },
        _ => Watch::Continue,
    }
}

/// Wait until the connection is told to make room for another.
pub(crate) async fn evicted(state: &ConnState) {
    while !state.evicted.load(Ordering::Acquire) {
        state.wake.notified().await;
    }
}

/// The grace a connection asked to finish gets before it is dropped.
pub(crate) fn close_grace() -> Duration {
    CLOSE_GRACE
}

/// Everything requests share: the limits, the in-flight cap and the self-metrics.
pub(crate) struct RequestLimits {
    pub(crate) limits: ServingLimits,
    inflight: Option<Arc<Semaphore>>,
    pub(crate) metrics: Option<Arc<SelfMetrics>>,
}

impl RequestLimits {
    pub(crate) fn new(limits: ServingLimits, metrics: Option<Arc<SelfMetrics>>) -> Self {
        let inflight = (limits.max_requests_inflight > 0)
            .then(|| Arc::new(Semaphore::new(limits.max_requests_inflight)));
        RequestLimits {
            limits,
            inflight,
            metrics,
        }
    }

    fn rejected(&self, reason: &str) {
        if let Some(m) = &self.metrics {
            m.request_rejected(reason);
        }
    }

    /// Seats of the in-flight limit `sem` taken now.
    fn inflight_in_use(&self, sem: &Semaphore) -> usize {
        self.limits
            .max_requests_inflight
            .saturating_sub(sem.available_permits())
    }

    /// Every second while `stop` is not set, reports the most in-flight seats taken at once
    /// during it (`apiserver_current_inflight_requests`), as the generic API server's
    /// in-flight limit does. Nothing to do without a limit or metrics.
    pub(crate) async fn sample_inflight(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let (Some(sem), Some(m)) = (&self.inflight, &self.metrics) else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the first second ends one second later.
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => m.inflight_second_ended(self.inflight_in_use(sem)),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The first `%` of `path` not followed by two hexadecimal digits, as Go's URL parser
/// finds it (`%zz`, or a `%` at the end).
fn bad_escape(path: &str) -> Option<&str> {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Some(path.get(i..(i + 3).min(b.len())).unwrap_or("%"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

fn is_health_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// What a request says about its body.
#[derive(Debug, PartialEq)]
enum BodySize {
    None,
    Declared(u64),
    Unknown,
}

fn body_size<B>(req: &Request<B>) -> BodySize {
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        return BodySize::Unknown;
    }
    match req.headers().get(header::CONTENT_LENGTH) {
        None => BodySize::None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(0) => BodySize::None,
            Some(n) => BodySize::Declared(n),
            None => BodySize::Unknown,
        },
    }
}

/// Read `body` to its end and throw it away, when it is at most `limit` bytes and ends within
/// `grace`; whether it did. A body declared larger is not read at all.
async fn discard(mut body: Body, size: &BodySize, limit: u64, grace: Duration) -> bool {
    if matches!(size, BodySize::Declared(n) if *n > limit) {
        return false;
    }
    let read = async {
        let mut seen: u64 = 0;
        loop {
            let frame =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx));
            match frame.await {
                None => return true,
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    seen = seen.saturating_add(n);
                    if seen > limit {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    };
    tokio::time::timeout(grace, read).await.unwrap_or(false)
}

/// The `timeout` query parameter, percent-decoded.
fn timeout_param(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "timeout").then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// 429 with `Retry-After`, as the generic API server answers past its in-flight limit.
fn too_many_requests() -> Response<Body> {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": 1},
        "code": 429,
    });
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        status.to_string(),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The largest piece of an answer handed to the connection at a time, and the size up to
/// which an answer gives its seat back at once: Go's HTTP/2 server copies what a handler
/// writes into a buffer of this size, so a handler returns (and its seat is freed) when its
/// answer fits, and waits for the client beyond. HTTP/2 sends what it is handed whatever
/// the client's flow-control window, so an answer handed over whole to a client that does
/// not read would sit in the connection's buffer outside any limit; handed out in pieces,
/// the rest waits here, counted in flight, until the window opens.
const ANSWER_PIECE: usize = 4 * 1024;

/// An answer's body that holds its request's in-flight seat until all but its last piece
/// has been handed to the connection (or until it is dropped with its stream or
/// connection), as a Go server's handler keeps its seat while its write waits for the
/// client: past `--max-requests-inflight`, clients that stop reading large answers get 429s
/// rather than more answers buffered for them.
///
/// The seat is held until the request's deadline at most: then the connection's watchdog
/// takes it back together with what was left to send, and the answer ends in an error the
/// next time the connection asks for more (an HTTP/2 stream is reset, an HTTP/1.1
/// connection closed), as the generic API server's timeout filter means to abort an answer
/// already begun.
struct HeldBody {
    held: Arc<HeldAnswer>,
}

/// What a [`HeldBody`] shares with its connection's watchdog: `None` once the watchdog took
/// it away at the deadline.
type HeldAnswer = Mutex<Option<Held>>;

struct Held {
    inner: Body,
    /// The part of the inner body's last data frame not handed out yet.
    rest: bytes::Bytes,
    seat: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl HeldBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut held = self.lock();
        let Some(me) = held.as_mut() else {
            return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the answer was not read within the request timeout",
            )))));
        };
        if !me.rest.is_empty() {
            let piece = me.rest.split_to(me.rest.len().min(ANSWER_PIECE));
            if me.rest.is_empty() {
                // What is left fits the buffer a Go handler's last write fills.
                me.seat = None;
            }
            return Poll::Ready(Some(Ok(http_body::Frame::data(piece))));
        }
        match Pin::new(&mut me.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() > ANSWER_PIECE {
                        me.rest = data.split_off(ANSWER_PIECE);
                    }
                    Poll::Ready(Some(Ok(http_body::Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(end) => {
                me.seat = None;
                Poll::Ready(end)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Taken away: not ended, so that the connection asks for more and hears the error.
        self.lock()
            .as_ref()
            .is_some_and(|h| h.rest.is_empty() && h.inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let held = self.lock();
        let Some(h) = held.as_ref() else {
            return http_body::SizeHint::new();
        };
        let inner = h.inner.size_hint();
        let rest = h.rest.len() as u64;
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

/// `resp` with its body holding `seat` until sent or until `deadline`, when it is larger
/// than one piece; a smaller answer (a Status, a metric value) gives it back now.
fn holding_seat(
    resp: Response<Body>,
    seat: Option<tokio::sync::OwnedSemaphorePermit>,
    conn: &ConnState,
    deadline: Instant,
) -> Response<Body> {
    let small = http_body::Body::size_hint(resp.body())
        .upper()
        .is_some_and(|n| n <= ANSWER_PIECE as u64);
    match seat {
        None => resp,
        Some(_) if small => resp,
        Some(seat) => resp.map(|inner| {
            let held = Arc::new(Mutex::new(Some(Held {
                inner,
                rest: bytes::Bytes::new(),
                seat: Some(seat),
            })));
            conn.hold_until(deadline, &held);
            Body::new(HeldBody { held })
        }),
    }
}

/// Serve one request through `app` within the limits.
pub(crate) async fn handle(
    app: Router,
    req: Request<Body>,
    limits: Arc<RequestLimits>,
    conn: Arc<ConnState>,
) -> Result<Response<Body>, Infallible> {
    let http1 = req.version() <= axum::http::Version::HTTP_11;
    let size = body_size(&req);
    let unread = req.method() == Method::GET
        || req.method() == Method::HEAD
        || is_health_probe(req.uri().path());
    if size != BodySize::None && unread {
        // Go's handlers never read the body of a GET or HEAD, nor the health endpoints that
        // of any method: it is served as if there were none. Over
        // HTTP/1.1 a small one is read off the connection and thrown away first (not counted
        // as serving, as below), so that the connection can carry the next request; a larger
        // one, or one that does not come in time, is left unread and the connection closed
        // after the answer. HTTP/2 throws away what comes on the stream.
        let (parts, body) = req.into_parts();
        let read = if http1 {
            let grace = limits.limits.request_header_timeout;
            discard(body, &size, GET_BODY_DISCARD_LIMIT, grace).await
        } else {
            drop(body);
            true
        };
        let req = Request::from_parts(parts, Body::empty());
        let mut resp = serve(app, req, limits, conn).await;
        if !read {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return Ok(resp);
    }
    if size != BodySize::None {
        // Not counted as serving: a client that never sends the body it announced leaves
        // its connection one that can make room at the connection cap. Only HTTP/1.1 needs
        // the body read off the connection before the answer (HTTP/2 resets the stream).
        limits.rejected("body");
        if let (true, BodySize::Declared(n)) = (http1, size) {
            if n <= DRAIN_LIMIT {
                let grace = limits.limits.request_header_timeout;
                let body = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT as usize);
                let _ = tokio::time::timeout(grace, body).await;
            }
        }
        let mut resp = ApiError::Rejected {
            code: StatusCode::PAYLOAD_TOO_LARGE,
            reason: "RequestEntityTooLarge",
            message: "Request entity too large: request bodies are not accepted; every promhpa API is read with GET".into(),
            details: None,
        }
        .into_response();
        if http1 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return Ok(resp);
    }
    Ok(serve(app, req, limits, conn).await)
}

/// Serve a request without a body (or whose body is not read) through `app` within the
/// limits.
async fn serve(
    app: Router,
    req: Request<Body>,
    limits: Arc<RequestLimits>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    // Go's server refuses a path it cannot decode before any handler sees it.
    if let Some(escape) = bad_escape(req.uri().path()) {
        limits.rejected("bad_path");
        return ApiError::BadRequest(format!("invalid URL escape \"{escape}\"")).into_response();
    }
    let _guard = conn.begin_request();
    // A request answered here (429, 504) is counted in the generic API server's request
    // metrics under the route of its path, read only then; the handlers count the others.
    let unserved = |method: &Method, uri: &Uri| {
        let m = limits.metrics.as_ref()?;
        let counted = Counted::of_path(uri.path())?.asked_with(method)?;
        Some((m, counted, RequestLine::of(method, uri.query())))
    };
    let permit = match (&limits.inflight, is_health_probe(req.uri().path())) {
        (Some(sem), false) => match sem.clone().try_acquire_owned() {
            Ok(p) => {
                if let Some(m) = &limits.metrics {
                    m.inflight_taken(limits.inflight_in_use(sem));
                }
                Some(p)
            }
            Err(_) => {
                limits.rejected("max_requests_inflight");
                // Counted without a duration, as the generic API server counts a request
                // it drops at its in-flight limit.
                if let Some((m, counted, line)) = unserved(req.method(), req.uri()) {
                    m.observe_api_request(counted, line, 429, None);
                }
                return too_many_requests();
            }
        },
        _ => None,
    };
    let caller = match timeout_param(req.uri().query()) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => match crate::deadline::parse_timeout_param(&v) {
            Ok(d) => Some(d),
            Err(e) => {
                return ApiError::BadRequest(format!(
                    "invalid timeout specified in the request URL - {e}"
                ))
                .into_response()
            }
        },
    };
    let timeout = crate::deadline::effective_timeout(caller, limits.limits.request_timeout);
    let deadline = Instant::now() + timeout;
    let asked = limits
        .metrics
        .is_some()
        .then(|| (req.method().clone(), req.uri().clone()));
    let served = crate::deadline::scope(deadline, app.oneshot(req));
    match tokio::time::timeout_at(deadline, served).await {
        // The connection's request guard ends here: a client that does not read its answer
        // keeps the seat, not the connection out of its idle timeout.
        Ok(Ok(resp)) => holding_seat(resp, permit, &conn, deadline),
        Ok(Err(never)) => match never {},
        Err(_) => {
            limits.rejected("request_timeout");
            let counted = asked.and_then(|(method, uri)| unserved(&method, &uri));
            if let Some((m, counted, line)) = counted {
                let took = Instant::now().saturating_duration_since(deadline) + timeout;
                m.observe_api_request(counted, line, 504, Some(took));
            }
            ApiError::Rejected {
                code: StatusCode::GATEWAY_TIMEOUT,
                reason: "Timeout",
                message: "Timeout: request did not complete within requested timeout - context deadline exceeded".into(),
                details: Some(Default::default()),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's state, and a deadline far enough away not to pass during a test.
    fn conn_and_deadline() -> (Slot, Instant) {
        let (slot, _) = ConnTable::new(0).admit();
        (slot.unwrap(), Instant::now() + Duration::from_secs(3600))
    }

    #[tokio::test]
    async fn an_answer_holds_its_seat_until_handed_out_in_pieces() {
        use http_body::Body as _;
        let (conn, later) = conn_and_deadline();
        let conn = &conn.state;
        let seats = Arc::new(Semaphore::new(1));
        let seat = seats.clone().try_acquire_owned().unwrap();
        let resp = holding_seat(
            Response::new(Body::from(vec![b'x'; 10_000])),
            Some(seat),
            conn,
            later,
        );
        let mut body = resp.into_body();
        // The length is still known, so HTTP/1.1 sends Content-Length.
        assert_eq!(body.size_hint().exact(), Some(10_000));
        let mut pieces = Vec::new();
        let mut held = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            pieces.push(frame.unwrap().into_data().unwrap().len());
            held.push(seats.available_permits() == 0);
        }
        assert_eq!(pieces, [4_096, 4_096, 1_808]);
        // Held until the last piece is handed out.
        assert_eq!(held, [true, true, false]);
        assert!(body.is_end_stream());
        assert_eq!(seats.available_permits(), 1);
        // A body dropped unsent (its stream reset, its connection gone) gives the seat back.
        let seat = seats.clone().try_acquire_owned().unwrap();
        drop(holding_seat(
            Response::new(Body::from(vec![b'x'; 10_000])),
            Some(seat),
            conn,
            later,
        ));
        assert_eq!(seats.available_permits(), 1);
        // An answer of one piece (a Status, a metric value) gives it back at once.
        let seat = seats.clone().try_acquire_owned().unwrap();
        let small = holding_seat(
            Response::new(Body::from("x".repeat(4_096))),
            Some(seat),
            conn,
            later,
        );
        assert_eq!(seats.available_permits(), 1);
        drop((small, body));
        // The connection's watchdog has nothing left to watch.
        assert_eq!(conn.next_expiry(), None);
    }

    #[tokio::test]
    async fn at_its_deadline_an_answer_still_holding_its_seat_gives_it_back_and_ends() {
        use http_body::Body as _;
        let (conn, later) = conn_and_deadline();
        let conn = &conn.state;
        let seats = Arc::new(Semaphore::new(2));
        let soon = Instant::now() + Duration::from_secs(60);
        let answer = |deadline| {
            let seat = seats.clone().try_acquire_owned().unwrap();
            let resp = holding_seat(
                Response::new(Body::from(vec![b'x'; 10_000])),
                Some(seat),
                conn,
                deadline,
            );
            resp.into_body()
        };
        let mut unread = answer(soon);
        let mut read = answer(later);
        assert_eq!(seats.available_permits(), 0);
        assert_eq!(conn.next_expiry(), Some(soon));
        // The first piece of the one handed out, then its deadline passes too.
        let first = std::future::poll_fn(|cx| Pin::new(&mut read).poll_frame(cx)).await;
        assert_eq!(first.unwrap().unwrap().into_data().unwrap().len(), 4_096);

        conn.expire_held(soon);
        assert_eq!(seats.available_permits(), 1);
        assert_eq!(conn.next_expiry(), Some(later));
        // The connection asks for more and hears that the answer is over.
        assert!(!unread.is_end_stream());
        let next = std::future::poll_fn(|cx| Pin::new(&mut unread).poll_frame(cx)).await;
        assert!(matches!(next, Some(Err(_))), "{next:?}");

        conn.expire_held(later);
        assert_eq!(seats.available_permits(), 2);
        assert_eq!(conn.next_expiry(), None);
        drop((unread, read));
    }

    #[test]
    fn http1_heads_have_a_byte_budget_and_at_most_as_many_fields_as_a_header_map_holds() {
        let with = |bytes| ServingLimits {
            max_request_header_bytes: bytes,
            ..ServingLimits::default()
        };
        assert_eq!(with(3000).http1_header_bytes(), 8192);
        assert_eq!(with(2 << 20).http1_header_bytes(), 2 << 20);
        // As many fields as the parser may hand over fit a header map (past what one holds,
        // hyper's parser panics).
        let mut map = axum::http::HeaderMap::new();
        assert!(map.try_reserve(HTTP1_MAX_HEADER_FIELDS).is_ok());
    }

    #[test]
    fn paths_that_do_not_decode_are_found() {
        assert_eq!(bad_escape("/apis/x/pods/%zz/m"), Some("%zz"));
        assert_eq!(bad_escape("/apis/x/pods/a%2"), Some("%2"));
        assert_eq!(bad_escape("/apis/x/pods/a%"), Some("%"));
        assert_eq!(bad_escape("/apis/x/%6Eamespaces/a%2Fb"), None);
        assert_eq!(bad_escape("/apis/x/pods/%E2%9C%93"), None);
    }

    #[test]
    fn bodies_are_recognised() {
        let with = |k: &str, v: &str| Request::builder().header(k, v).body(()).unwrap();
        assert_eq!(body_size(&Request::new(())), BodySize::None);
        assert_eq!(body_size(&with("content-length", "0")), BodySize::None);
        assert_eq!(
            body_size(&with("content-length", "10485760")),
            BodySize::Declared(10485760)
        );
        assert_eq!(
            body_size(&with("content-length", "many")),
            BodySize::Unknown
        );
        assert_eq!(
            body_size(&with("transfer-encoding", "chunked")),
            BodySize::Unknown
        );
    }

    #[test]
    fn the_timeout_parameter_is_found_and_decoded() {
        assert_eq!(
            timeout_param(Some("labelSelector=a%3Db&timeout=32s")),
            Some("32s".into())
        );
        assert_eq!(timeout_param(Some("timeout=1m30s")), Some("1m30s".into()));
        assert_eq!(timeout_param(Some("timeouts=1s")), None);
        assert_eq!(timeout_param(None), None);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_idle_connection_makes_room() {
        let table = ConnTable::new(2);
        let (a, _) = table.admit();
        let a = a.unwrap();
        let (b, _) = table.admit();
        let b = b.unwrap();
        // `a` serves a request, `b` is still in its handshake: `b` is closed for `c`.
        let guard = a.state.begin_request();
        let (c, evicted) = table.admit();
        assert!(c.is_some() && evicted);
        assert!(b.state.evicted.load(Ordering::Acquire));
        assert!(!a.state.evicted.load(Ordering::Acquire));
        assert_eq!(table.len(), 2);
        // With every connection serving, a new one is refused.
        let _g2 = c.as_ref().unwrap().state.begin_request();
        let (d, _) = table.admit();
        assert!(d.is_none());
        // A finished request leaves its connection idle and evictable again.
        drop(guard);
        assert_eq!(a.state.phase(), Phase::Idle);
        let (e, evicted) = table.admit();
        assert!(e.is_some() && evicted);
        assert!(a.state.evicted.load(Ordering::Acquire));
        drop((a, b, c, e));
        assert_eq!(table.len(), 0);
        table.drained().await;
    }

    #[test]
    fn bytes_on_an_idle_http1_connection_start_a_request_head() {
        let table = ConnTable::new(0);
        let (slot, _) = table.admit();
        let s = slot.unwrap().state.clone();
        let limits = ServingLimits::default();
        assert_eq!(s.next_check(&limits).1, Some(CloseReason::HandshakeTimeout));
        s.handshake_done(false);
        assert_eq!(s.next_check(&limits).1, Some(CloseReason::HeaderTimeout));
        drop(s.begin_request());
        assert_eq!(s.next_check(&limits).1, Some(CloseReason::IdleTimeout));
        s.on_read();
        assert_eq!(s.next_check(&limits).1, Some(CloseReason::HeaderTimeout));
        // On HTTP/2, frames between requests (pings, window updates) keep it idle.
        s.handshake_done(true);
        drop(s.begin_request());
        s.on_read();
        assert_eq!(s.next_check(&limits).1, Some(CloseReason::IdleTimeout));
    }
}
