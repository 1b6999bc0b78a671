//! Requests over HTTP/1.1 connections opened and kept here, without reqwest's layers.
//!
//! A query to Prometheus is the one outgoing request on a metric request's path, and it is
//! made once per request the HPA sends. Sent through reqwest (its URL parsed again, redirect
//! and retry layers, a pool shared by every thread), a whole metric request cost 12–18 µs more
//! of promhpa's CPU, 6–7 % of it, answered one at a time (README). [`Direct`] sends such a request
//! over a kept-alive HTTP/1.1 connection (TLS from the same CA and client certificate) that
//! the calling thread opened, and reads the whole answer:
//!
//! - each thread keeps its own idle connections, as [`crate::ReloadingClient`] does, so the
//!   connection's task runs on the thread that sends on it;
//! - a kept-alive connection found closed when a request was about to go out on it (the
//!   server closed it while idle) is replaced by a new one, once, as reqwest does;
//! - redirects are not followed: a 3xx is the answer, for the caller to send again through
//!   reqwest;
//! - what it does not do (a proxy from the environment, another address for the host, no
//!   certificate verification, the built-in roots) is left to reqwest: such settings build no
//!   [`Direct`] (see [`crate::ClientSettings::direct`]).

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error_chain;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = crate::POOL_IDLE_TIMEOUT;

/// The most idle connections one thread keeps; more are closed when their request is done.
const MAX_IDLE_PER_THREAD: usize = 64;

/// A request: a GET of `url`, or with `form`, a POST of that form to it.
pub struct DirectRequest<'a> {
    pub url: &'a url::Url,
    /// An `application/x-www-form-urlencoded` body; the request is then a POST.
    pub form: Option<String>,
    /// The `Authorization` header, when there is one.
    pub authorization: Option<HeaderValue>,
}

/// A whole answer.
#[derive(Debug)]
pub struct DirectAnswer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectError {
    /// No connection (TCP and TLS handshake) within the connect timeout.
    ConnectTimeout,
    /// No whole answer within the request's timeout.
    Timeout,
    /// Anything else, as a message naming the URL (without its query) and the cause.
    Failed(String),
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectError::ConnectTimeout => f.write_str("timed out connecting"),
            DirectError::Timeout => f.write_str("timed out"),
            DirectError::Failed(m) => f.write_str(m),
        }
    }
}

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    tls: bool,
    host: url::Host<String>,
    port: u16,
}

impl Origin {
    fn of(url: &url::Url) -> Option<Origin> {
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Origin {
            tls,
            host: url.host()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }
}

/// A connection waiting for its next request.
struct Idle {
    origin: Origin,
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Sends requests over HTTP/1.1 connections each thread opens and keeps.
pub struct Direct {
    /// TLS for `https` URLs; without it only `http` URLs are [handled](Direct::handles).
    tls: Option<tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
    /// Sent on every request (`Accept`, the user agent, the settings' headers).
    headers: HeaderMap,
    idle: thread_local::ThreadLocal<RefCell<Vec<Idle>>>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Direct {
    pub(crate) fn new(
        tls: Option<rustls::ClientConfig>,
        connect_timeout: Duration,
        headers: HeaderMap,
    ) -> Direct {
        Direct {
            tls: tls.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c))),
            connect_timeout,
            headers,
            idle: thread_local::ThreadLocal::new(),
        }
    }

    /// Whether requests to `url` can be sent here: `http`, or `https` with a CA.
    pub fn handles(&self, url: &url::Url) -> bool {
        match url.scheme() {
            "http" => true,
            "https" => self.tls.is_some(),
            _ => false,
        }
    }

    /// Send `request` and read its whole answer, all within `timeout`.
    pub async fn send(
        &self,
        request: &DirectRequest<'_>,
        timeout: Duration,
    ) -> Result<DirectAnswer, DirectError> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(DirectError::Timeout),
        }
    }

    async fn exchange(&self, request: &DirectRequest<'_>) -> Result<DirectAnswer, DirectError> {
        let url = request.url;
        let failed = |cause: String| {
            let mut shown = url.clone();
            shown.set_query(None);
            let _ = shown.set_password(None);
            let _ = shown.set_username("");
            DirectError::Failed(format!("error sending request for url ({shown}): {cause}"))
        };
        let origin = Origin::of(url)
            .ok_or_else(|| failed("the URL has no host or its scheme is not http(s)".into()))?;
        if origin.tls && self.tls.is_none() {
            return Err(failed("no TLS configuration for https".into()));
        }
        let mut message = self.message(request).map_err(failed)?;
        // A kept-alive connection the server closed while it was idle is not one to send on.
        let mut kept = None;
        while let Some(mut sender) = self.take(&origin) {
            if sender.ready().await.is_ok() {
                kept = Some(sender);
                break;
            }
        }
        let reused = kept.is_some();
        let mut sender = match kept {
            Some(sender) => sender,
            None => self.connect(&origin).await.map_err(|e| e.or(&failed))?,
        };
        let mut retried = !reused;
        let response = loop {
            match sender.try_send_request(message).await {
                Ok(response) => break response,
                Err(mut e) => match e.take_message() {
                    // Closed before the request went out: once more, on a new connection.
                    Some(unsent) if !retried => {
                        retried = true;
                        message = unsent;
                        sender = self.connect(&origin).await.map_err(|e| e.or(&failed))?;
                    }
                    _ => return Err(failed(error_chain(e.error()))),
                },
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(format!("reading the answer: {}", error_chain(&e))))?
            .to_bytes();
        self.put(origin, sender);
        Ok(DirectAnswer { status, body })
    }

    /// The HTTP message of `request`.
    fn message(&self, request: &DirectRequest<'_>) -> Result<hyper::Request<Full<Bytes>>, String> {
        let url = request.url;
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let host = match url.port() {
            Some(_) => &url[url::Position::BeforeHost..url::Position::AfterPort],
            None => &url[url::Position::BeforeHost..url::Position::AfterHost],
        };
        let (method, body) = match &request.form {
            Some(form) => (Method::POST, Bytes::from(form.clone())),
            None => (Method::GET, Bytes::new()),
        };
        let mut message = hyper::Request::builder()
            .method(method)
            .uri(target)
            .body(Full::new(body))
            .map_err(|e| format!("making the request: {e}"))?;
        let headers = message.headers_mut();
        headers.insert(
            HOST,
            HeaderValue::from_str(host).map_err(|e| format!("host {host:?}: {e}"))?,
        );
        // The host is the URL's, as Go takes it from the request and not from its headers.
        for (name, value) in self.headers.iter().filter(|(name, _)| *name != HOST) {
            headers.append(name, value.clone());
        }
        if let Some(auth) = &request.authorization {
            headers.insert(hyper::header::AUTHORIZATION, auth.clone());
        }
        if request.form.is_some() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        Ok(message)
    }

    /// A new connection to `origin`, TLS handshake done, within the connect timeout.
    async fn connect(&self, origin: &Origin) -> Result<SendRequest<Full<Bytes>>, ConnectError> {
        let open = async {
            let tcp = self.tcp(origin).await?;
            let failed = ConnectError::Failed;
            let _ = tcp.set_nodelay(true);
            match (&self.tls, origin.tls) {
                (Some(tls), true) => {
                    let name = match &origin.host {
                        url::Host::Domain(name) => ServerName::try_from(name.clone())
                            .map_err(|e| failed(format!("server name {name:?}: {e}")))?,
                        url::Host::Ipv4(ip) => ServerName::from(IpAddr::from(*ip)),
                        url::Host::Ipv6(ip) => ServerName::from(IpAddr::from(*ip)),
                    };
                    let stream = tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| failed(error_chain(&e)))?;
                    handshake(stream).await.map_err(failed)
                }
                (None, true) => Err(failed("no TLS configuration for https".to_string())),
                (_, false) => handshake(tcp).await.map_err(failed),
            }
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(opened) => opened,
            Err(_) => Err(ConnectError::TimedOut),
        }
    }

    /// A TCP connection to `origin`: its addresses tried in turn, each with an equal share
    /// of the connect timeout (as hyper's connector shares it), so that an address that
    /// never answers (an IPv6 one without a route) leaves time for the next.
    async fn tcp(&self, origin: &Origin) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = match &origin.host {
            url::Host::Domain(name) => tokio::net::lookup_host((name.as_str(), origin.port))
                .await
                .map_err(|e| ConnectError::Failed(format!("dns error: {e}")))?
                .collect(),
            url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::from(*ip), origin.port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::from(*ip), origin.port)],
        };
        let share = self.connect_timeout / u32::try_from(addrs.len().max(1)).unwrap_or(u32::MAX);
        let mut last = ConnectError::Failed(format!("dns error: no address for {}", origin.host));
        for addr in addrs {
            match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(e)) => last = ConnectError::Failed(format!("tcp connect error: {e}")),
                Err(_) => last = ConnectError::TimedOut,
            }
        }
        Err(last)
    }

    /// A kept-alive connection of this thread to `origin`, if one is idle.
    fn take(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.get_or_default().borrow_mut();
        while let Some(i) = idle.iter().rposition(|c| &c.origin == origin) {
            let c = idle.swap_remove(i);
            if !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keep `sender` for the next request of this thread, closing connections idle too long.
    fn put(&self, origin: Origin, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.get_or_default().borrow_mut();
        idle.retain(|c| !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT);
        if sender.is_closed() || idle.len() >= MAX_IDLE_PER_THREAD {
            return;
        }
        idle.push(Idle {
            origin,
            sender,
            since: Instant::now(),
        });
    }
}

/// Why no connection was opened.
enum ConnectError {
    TimedOut,
    Failed(String),
}

impl ConnectError {
    fn or(self, failed: &impl Fn(String) -> DirectError) -> DirectError {
        match self {
            ConnectError::TimedOut => DirectError::ConnectTimeout,
            ConnectError::Failed(cause) => failed(cause),
        }
    }
}

/// The HTTP/1.1 handshake on `io`, the connection's task spawned on this thread's runtime.
async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| error_chain(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// What a test server does with each request on a connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Answer 200 `ok` and keep the connection.
        KeepAlive,
        /// Answer 200 `ok`, then close the connection without saying so.
        CloseAfterOne,
        /// Answer with a redirect.
        Redirect,
        /// Read the request and never answer.
        Silent,
        /// Never answer on the first connection; answer as `KeepAlive` on the others.
        SilentFirst,
    }

    /// A plain-HTTP server on 127.0.0.1, how many connections it accepted and the heads of
    /// the requests it read (with their bodies).
    struct Server {
        url: url::Url,
        accepted: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    fn server(serve: Serve) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (accepted.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let serve = match serve {
                    Serve::SilentFirst if first => Serve::Silent,
                    Serve::SilentFirst => Serve::KeepAlive,
                    other => other,
                };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    loop {
                        let mut head = String::new();
                        let mut line = String::new();
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) => head.push_str(&line),
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|n| n.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        head.push_str(&String::from_utf8_lossy(&body));
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(head);
                        let answer = match serve {
                            Serve::KeepAlive | Serve::CloseAfterOne => {
                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
                            }
                            Serve::Redirect => format!(
                                "HTTP/1.1 302 Found\r\nLocation: http://{addr}/there\r\nContent-Length: 0\r\n\r\n"
                            ),
                            Serve::Silent | Serve::SilentFirst => {
                                std::thread::sleep(Duration::from_secs(30));
                                return;
                            }
                        };
                        if (&stream).write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                        if let Serve::CloseAfterOne = serve {
                            // Let the client read the answer and pool the connection first.
                            std::thread::sleep(Duration::from_millis(50));
                            return;
                        }
                    }
                });
            }
        });
        Server {
            url: url::Url::parse(&format!("http://{addr}/api/v1/query?query=up"))
                .unwrap_or_else(|e| panic!("{e}")),
            accepted,
            requests,
        }
    }

    fn direct(headers: HeaderMap) -> Direct {
        Direct::new(None, Duration::from_secs(5), headers)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn get(url: &url::Url) -> DirectRequest<'_> {
        DirectRequest {
            url,
            form: None,
            authorization: None,
        }
    }

    /// The answer to a GET of `url` sent on `runtime`; the test fails without one.
    fn answered(
        runtime: &tokio::runtime::Runtime,
        client: &Direct,
        url: &url::Url,
    ) -> DirectAnswer {
        runtime
            .block_on(client.send(&get(url), Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_thread_keeps_its_connections_for_its_next_requests() {
        let s = server(Serve::KeepAlive);
        let client = Arc::new(direct(HeaderMap::new()));
        let here = runtime();
        for _ in 0..3 {
            let answer = answered(&here, &client, &s.url);
            assert_eq!(
                (answer.status.as_u16(), &answer.body[..]),
                (200, &b"ok"[..])
            );
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 1, "one connection, kept");
        let (other, url) = (client.clone(), s.url.clone());
        std::thread::spawn(move || {
            answered(&runtime(), &other, &url);
        })
        .join()
        .unwrap_or_else(|_| panic!("the other thread failed"));
        assert_eq!(
            s.accepted.load(Ordering::SeqCst),
            2,
            "another thread opens its own"
        );
        answered(&here, &client, &s.url);
        assert_eq!(
            s.accepted.load(Ordering::SeqCst),
            2,
            "the first still has its own"
        );
    }

    #[test]
    fn a_connection_the_server_closed_while_idle_is_replaced() {
        let s = server(Serve::CloseAfterOne);
        let client = direct(HeaderMap::new());
        let here = runtime();
        for i in 1..=3 {
            let answer = here.block_on(async {
                let answer = client.send(&get(&s.url), Duration::from_secs(5)).await;
                // The server closes the connection after its answer, while it is pooled.
                tokio::time::sleep(Duration::from_millis(100)).await;
                answer
            });
            assert!(answer.is_ok(), "request {i}: {answer:?}");
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_request_carries_the_headers_the_form_and_the_host() {
        let s = server(Serve::KeepAlive);
        let mut headers = HeaderMap::new();
        headers.insert("x-scope-orgid", HeaderValue::from_static("tenant-1"));
        // The host is the URL's, whatever the settings' headers say (as in Go).
        headers.insert(HOST, HeaderValue::from_static("elsewhere.example"));
        let client = direct(headers);
        let here = runtime();
        let url = s.url.clone();
        let post = DirectRequest {
            url: &url,
            form: Some("query=sum%28up%29&time=1".into()),
            authorization: Some(HeaderValue::from_static("Bearer t0ken")),
        };
        let answer = here.block_on(client.send(&post, Duration::from_secs(5)));
        assert!(answer.is_ok(), "{answer:?}");
        answered(&here, &client, &s.url);
        let requests = s.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let port = s.url.port().unwrap_or_default();
        let (post, get) = (&requests[0].to_lowercase(), &requests[1].to_lowercase());
        assert!(
            post.starts_with("post /api/v1/query?query=up http/1.1\r\n"),
            "{post}"
        );
        for line in [
            format!("host: 127.0.0.1:{port}\r\n"),
            "x-scope-orgid: tenant-1\r\n".into(),
            "authorization: bearer t0ken\r\n".into(),
            "content-type: application/x-www-form-urlencoded\r\n".into(),
            "content-length: 24\r\n".into(),
        ] {
            assert!(post.contains(&line), "{line:?} in {post}");
        }
        assert!(post.ends_with("\r\n\r\nquery=sum%28up%29&time=1"), "{post}");
        assert!(!post.contains("elsewhere"), "{post}");
        assert!(
            get.starts_with("get /api/v1/query?query=up http/1.1\r\n"),
            "{get}"
        );
        assert!(get.contains("x-scope-orgid: tenant-1\r\n"), "{get}");
        assert!(!get.contains("authorization"), "{get}");
        assert!(!get.contains("content-length"), "{get}");
    }

    #[test]
    fn a_redirect_is_the_answer() {
        let s = server(Serve::Redirect);
        let answer =
            runtime().block_on(direct(HeaderMap::new()).send(&get(&s.url), Duration::from_secs(5)));
        assert_eq!(answer.map(|a| a.status.as_u16()), Ok(302));
        assert_eq!(
            s.requests.lock().unwrap_or_else(|p| p.into_inner()).len(),
            1
        );
    }

    #[test]
    fn no_answer_in_time_and_no_connection_are_told_apart() {
        let s = server(Serve::Silent);
        let here = runtime();
        let client = direct(HeaderMap::new());
        let answer = here.block_on(client.send(&get(&s.url), Duration::from_millis(200)));
        assert_eq!(answer.err(), Some(DirectError::Timeout));
        // A listener that never accepts: the TCP handshake completes (backlog) but TLS does
        // not, so the connect timeout runs out.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap_or_else(|e| panic!("{e}"))
            .cert
            .pem();
        let tls = crate::self_signed::client_config(ca.as_bytes(), Vec::new(), None, Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let client = Direct::new(Some(tls), Duration::from_millis(200), HeaderMap::new());
        let url = url::Url::parse(&format!("https://{addr}/")).unwrap_or_else(|e| panic!("{e}"));
        let answer = here.block_on(client.send(&get(&url), Duration::from_secs(5)));
        assert_eq!(answer.err(), Some(DirectError::ConnectTimeout));
        drop(listener);
        // Nothing listens: the error names the URL without its query, and the cause.
        let answer = here.block_on(client.send(&get(&url), Duration::from_secs(5)));
        let message = answer.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "error sending request for url (https://{addr}/): tcp connect error: "
            )),
            "{message}"
        );
    }

    #[test]
    fn a_connection_whose_answer_did_not_come_in_time_is_not_kept() {
        let s = server(Serve::SilentFirst);
        let here = runtime();
        let client = direct(HeaderMap::new());
        let answer = here.block_on(client.send(&get(&s.url), Duration::from_millis(200)));
        assert_eq!(answer.err(), Some(DirectError::Timeout));
        // The next request goes on a new connection, and is answered there.
        answered(&here, &client, &s.url);
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
        answered(&here, &client, &s.url);
        assert_eq!(
            s.accepted.load(Ordering::SeqCst),
            2,
            "the answered one is kept"
        );
    }

    #[test]
    fn https_needs_a_ca() {
        let client = direct(HeaderMap::new());
        let https = url::Url::parse("https://prometheus:9090/").unwrap_or_else(|e| panic!("{e}"));
        let http = url::Url::parse("http://prometheus:9090/").unwrap_or_else(|e| panic!("{e}"));
        assert!(!client.handles(&https));
        assert!(client.handles(&http));
    }
}
