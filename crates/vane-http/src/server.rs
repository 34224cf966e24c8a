//! A small HTTP/1.1 server on std::net: one thread per connection, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vane_store::Observation;

use crate::{ApiError, Route, ServerError};

/// What the routes answer; implemented by the `vane` binary.
pub trait Api: Send + Sync {
    /// Answers a route; `body` is the request's JSON body (`null` when it had none).
    ///
    /// # Errors
    /// An [`ApiError`] whose variant picks the status code.
    fn handle(&self, route: Route, body: Value) -> Result<Reply, ApiError>;
}

/// A successful answer.
#[non_exhaustive]
pub enum Reply {
    Json(Value),
    /// A task log; streamed while `running` says the attempt still runs.
    Log(LogStream),
    /// The answer to `/metrics`: totals with histograms over [`crate::DURATION_BUCKETS`]
    /// and [`crate::LAG_BUCKETS`], sent in the Prometheus text format.
    Metrics(Observation),
}

pub struct LogStream {
    /// What the log gained since the last call (all of it, the first time).
    pub read: Box<dyn FnMut() -> Result<Vec<u8>, ApiError> + Send>,
    /// Whether to keep sending new bytes: `follow` was asked and the attempt has not ended.
    pub running: Box<dyn FnMut() -> bool + Send>,
}

/// Whether a `Host` header names this machine's loopback: `localhost` (or a name under it),
/// `127.0.0.1` or any 127/8 address, `[::1]`, with or without a port.
fn names_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A bound listener, not yet answering.
pub struct Server {
    listener: TcpListener,
    token: Option<String>,
    /// Reads need the token too when the server is reachable from other machines.
    reads_need_token: bool,
    /// [`REQUEST_DEADLINE`]; a field so that tests can shorten it.
    request_deadline: Duration,
}

/// Followed logs hold a connection for as long as a task runs; this bounds the threads they
/// and everything else can take.
const MAX_CONNECTIONS: usize = 64;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: u64 = 1024 * 1024;
/// How long a client has to send its whole request, head and body. One deadline for all of
/// it, not one per read: a client sending a byte now and then would otherwise hold its
/// connection (and with [`MAX_CONNECTIONS`] of them, lock everyone out) for as long as it likes.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// How long one write of an answer may wait for a client that does not read.
const IDLE: Duration = Duration::from_secs(30);
/// How long a refused request's unread rest is drained before the connection closes.
const LINGER: Duration = Duration::from_secs(2);
/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

impl Server {
    /// Listens on `addr`. A non-loopback address needs a token.
    ///
    /// # Errors
    /// [`ServerError::TokenRequired`] for a non-loopback address without a token,
    /// [`ServerError::Bind`] when the address cannot be listened on.
    pub fn bind(addr: SocketAddr, token: Option<String>) -> Result<Self, ServerError> {
        let token = token.filter(|t| !t.is_empty());
        let loopback = addr.ip().is_loopback();
        if !loopback && token.is_none() {
            return Err(ServerError::TokenRequired { addr });
        }
        let listener =
            TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self {
            listener,
            token,
            reads_need_token: !loopback,
            request_deadline: REQUEST_DEADLINE,
        })
    }

    /// The address listened on (with the port chosen when 0 was asked).
    ///
    /// # Panics
    /// Never in practice: a bound listener has an address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Answers requests forever, each connection on its own thread, at most
    /// [`MAX_CONNECTIONS`] at once (more are answered 503 at once, not queued).
    pub fn serve(self, api: Arc<dyn Api>) {
        let shared = Arc::new(self);
        let open = Arc::new(AtomicUsize::new(0));
        for stream in shared.listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                open.fetch_sub(1, Ordering::SeqCst);
                let busy = ApiError::Busy(format!(
                    "more than {MAX_CONNECTIONS} requests at once; try again in a moment"
                ));
                let _ = write_error(&mut stream, &busy);
                continue;
            }
            let slot = Slot(Arc::clone(&open));
            let (server, api) = (Arc::clone(&shared), Arc::clone(&api));
            std::thread::spawn(move || {
                // Owned by the thread, so the slot comes back however the thread ends.
                let _slot = slot;
                server.connection(stream, api.as_ref());
            });
        }
    }

    fn connection(&self, mut stream: TcpStream, api: &dyn Api) {
        let _ = stream.set_write_timeout(Some(IDLE));
        let deadline = Instant::now() + self.request_deadline;
        let outcome = match read_request(&stream, deadline, self.request_deadline) {
            Ok(request) => self.answer(&request, api, &mut stream),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            let _ = write_error(&mut stream, &error);
            // A refused request may not have been read to its end; closing with unread
            // bytes makes the kernel reset the connection, which can discard the answer
            // before the client reads it. Close our side, then drain what is left, for
            // LINGER in all (a trickling client must not hold the connection here either).
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut rest = Deadline::new(&stream, Instant::now() + LINGER).take(MAX_BODY);
            let _ = std::io::copy(&mut rest, &mut std::io::sink());
        }
    }

    /// Writes the answer; an `Err` is written by the caller as a JSON error.
    fn answer(
        &self,
        request: &Request,
        api: &dyn Api,
        stream: &mut TcpStream,
    ) -> Result<(), ApiError> {
        // Reads on loopback need no token, so a page of another site must not reach them by
        // DNS rebinding (its name made to point at 127.0.0.1): the browser then sends that
        // name as Host, which no loopback client of vane does.
        if !self.reads_need_token
            && let Some(host) = request.header("host")
            && !names_loopback(host)
        {
            return Err(ApiError::Forbidden(format!(
                "Host `{host}` is not this server's: it listens on loopback and answers requests addressed to localhost or a loopback address (open http://127.0.0.1:{}/); a page of another site could otherwise read it through DNS rebinding",
                self.local_addr().port()
            )));
        }
        // The UI's files hold no data, so they are served without the token: on a non-loopback
        // address the page asks for it before it reads the API.
        let path = request.target.split('?').next().unwrap_or_default();
        if request.method == "GET"
            && let Some(asset) = crate::ui::asset(path)
        {
            let _ = write_head_with(
                stream,
                "200 OK",
                asset.content_type,
                Some(asset.body.len()),
                crate::ui::SECURITY_HEADERS,
            )
            .and_then(|()| stream.write_all(asset.body));
            return Ok(());
        }
        let route = Route::parse(&request.method, &request.target)?;
        if route.is_action() || self.reads_need_token {
            self.authorize(request, route.is_action())?;
        }
        let body = if request.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&request.body)
                .map_err(|e| ApiError::BadRequest(format!("the request body is not JSON: {e}")))?
        };
        // `42`, `"x"` or `null` would otherwise read as a body without fields, and act.
        if route.is_action() && !request.body.is_empty() && !body.is_object() {
            return Err(ApiError::BadRequest(format!(
                "the request body must be a JSON object, e.g. {{}} or {{\"by\": \"alice\"}}; got {body}"
            )));
        }
        // A handler that panics is a bug in vane, but one request must not take the server
        // down with it: the client gets a 500 and the next request is answered as usual.
        let reply = std::panic::catch_unwind(AssertUnwindSafe(|| api.handle(route, body)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                tracing::error!(
                    method = %request.method,
                    target = %request.target,
                    panic = what,
                    "A request handler panicked."
                );
                Err(ApiError::Internal(format!(
                    "{} {} failed inside vane (a bug: the server's log has the details); other requests are unaffected",
                    request.method, path
                )))
            })?;
        match reply {
            Reply::Metrics(observed) => {
                let text = crate::render_metrics(&observed);
                let _ = write_head(
                    stream,
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    Some(text.len()),
                )
                .and_then(|()| stream.write_all(text.as_bytes()));
            }
            Reply::Json(value) => {
                let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                let _ = write_head(stream, "200 OK", "application/json", Some(text.len()))
                    .and_then(|()| stream.write_all(text.as_bytes()));
            }
            Reply::Log(log) => stream_log(stream, log)?,
        }
        Ok(())
    }

    fn authorize(&self, request: &Request, action: bool) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(ApiError::Forbidden(
                "this server takes no actions: it was started without a token; start it with --token-file FILE or VANE_API_TOKEN set".into(),
            ));
        };
        let given = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let what = if action {
            "actions"
        } else {
            "requests to this address"
        };
        match given {
            None => Err(ApiError::Unauthorized(format!(
                "{what} need the API token: send `Authorization: Bearer TOKEN`"
            ))),
            Some(given) if !same(given.as_bytes(), token.as_bytes()) => Err(
                ApiError::Unauthorized("the token sent is not this server's API token".into()),
            ),
            Some(_) => Ok(()),
        }
    }
}

/// Compares in time independent of where the first difference is, so the token cannot be
/// guessed byte by byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One of the [`MAX_CONNECTIONS`] connection slots, given back when dropped: also when the
/// connection's thread ends in a panic, so a failing request cannot leak its slot.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads from a stream until `deadline`, however the bytes trickle in: each read waits at
/// most for what is left of the time, and none starts after it.
struct Deadline<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a TcpStream, deadline: Instant) -> Self {
        Self { stream, deadline }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        // A zero timeout means "none" to the socket: past the deadline, fail here.
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

fn read_request(
    stream: &TcpStream,
    deadline: Instant,
    allowed: Duration,
) -> Result<Request, ApiError> {
    let bad = |m: &str| ApiError::BadRequest(m.to_owned());
    // A timed-out read is `WouldBlock` or `TimedOut` depending on the platform.
    let failed = |e: &std::io::Error, otherwise: &str| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ApiError::RequestTimeout(format!(
                "the request was not all sent within {} seconds; send it at once",
                allowed.as_secs_f64()
            ))
        }
        _ => bad(otherwise),
    };
    let mut reader = BufReader::new(Deadline::new(stream, deadline));
    let mut head = 0;
    let mut next_line = |reader: &mut BufReader<Deadline<'_>>| -> Result<String, ApiError> {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - head) as u64)
            .read_line(&mut line)
            .map_err(|e| failed(&e, "the request head is not text"))?;
        head += n;
        if n == 0 || !line.ends_with('\n') {
            return Err(bad("the request head is cut off or larger than 16 KiB"));
        }
        Ok(line)
    };
    let line = next_line(&mut reader)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "expected a request line such as `GET /api/runs HTTP/1.1`",
        ));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        let line = next_line(&mut reader)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(bad("send the body with Content-Length, not chunked"));
    }
    let length: u64 = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| bad("Content-Length is not a number"))?,
    };
    if length > MAX_BODY {
        return Err(bad("the body is larger than 1 MiB"));
    }
    reader
        .take(length)
        .read_to_end(&mut request.body)
        .map_err(|e| failed(&e, "the body ended before its Content-Length"))?;
    Ok(request)
}

fn write_head(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    length: Option<usize>,
) -> std::io::Result<()> {
    write_head_with(stream, status, content_type, length, "")
}

/// `extra`: more header lines, each ending in CRLF.
fn write_head_with(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    length: Option<usize>,
    extra: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\nCache-Control: no-store\r\n{extra}"
    );
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())
}

fn write_error(stream: &mut TcpStream, error: &ApiError) -> std::io::Result<()> {
    let (code, reason) = error.status();
    let body = json!({ "error": error.to_string() }).to_string();
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if code == 401 {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    if let ApiError::MethodNotAllowed { allow, .. } = error {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Sends a log file. While the attempt runs the body has no length and ends when the
/// connection closes (HTTP/1.1 allows it with `Connection: close`): new bytes are sent as
/// they are written, and the stream ends once the attempt has ended and its last bytes are out.
/// Sends a log piece by piece, as its reader hands them out, so a reader of a 200 MB log
/// holds one piece, not the log: no `Content-Length`, the answer ends when the connection
/// closes. A followed log goes on while its attempt runs.
fn stream_log(stream: &mut TcpStream, mut log: LogStream) -> Result<(), ApiError> {
    const TEXT: &str = "text/plain; charset=utf-8";
    // Read "still running?" before each read: bytes written just before the end are then
    // read by this read or the next, never lost.
    let mut running = (log.running)();
    // The first read before the head: a log that cannot be read is an error status, not an
    // empty stream.
    let mut piece = (log.read)()?;
    if write_head(stream, "200 OK", TEXT, None).is_err() {
        return Ok(());
    }
    loop {
        if piece.is_empty() {
            if !running {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_POLL);
            running = (log.running)();
        } else if stream.write_all(&piece).is_err() {
            return Ok(());
        }
        piece = match (log.read)() {
            Ok(piece) => piece,
            // The head is out: all that is left is to end the body.
            Err(_) => return Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every route with its own debug text, so a test sees what was asked.
    struct Echo;

    impl Api for Echo {
        fn handle(&self, route: Route, body: Value) -> Result<Reply, ApiError> {
            Ok(Reply::Json(
                json!({ "route": format!("{route:?}"), "body": body }),
            ))
        }
    }

    fn start(token: Option<&str>) -> SocketAddr {
        serve(Arc::new(Echo), token)
    }

    fn serve(api: Arc<dyn Api>, token: Option<&str>) -> SocketAddr {
        serve_within(api, token, REQUEST_DEADLINE)
    }

    fn serve_within(api: Arc<dyn Api>, token: Option<&str>, deadline: Duration) -> SocketAddr {
        let mut server =
            Server::bind("127.0.0.1:0".parse().unwrap(), token.map(str::to_owned)).expect("bind");
        server.request_deadline = deadline;
        let addr = server.local_addr();
        std::thread::spawn(move || server.serve(api));
        addr
    }

    /// Panics on `/api/alerts`, as a handler with a bug would; answers every other route.
    struct Panics;

    impl Api for Panics {
        fn handle(&self, route: Route, _body: Value) -> Result<Reply, ApiError> {
            assert!(
                !matches!(route, Route::Alerts { .. }),
                "a bug in the alerts handler"
            );
            Ok(Reply::Json(json!({ "ok": true })))
        }
    }

    /// Sends `raw` as is; the status code and body of the answer.
    fn send(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        // The server may answer (and close) before reading an oversized request to the end.
        let _ = stream.write_all(raw);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn post(addr: SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let raw = format!(
            "POST /api/alerts/3/ack HTTP/1.1\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        send(addr, raw.as_bytes())
    }

    #[test]
    fn actions_need_the_token_reads_on_loopback_do_not() {
        let addr = start(Some("t0ken"));
        let (status, body) = post(addr, None, "{}");
        assert_eq!(status, 401);
        assert!(body.contains("Authorization: Bearer TOKEN"), "{body}");
        assert_eq!(post(addr, Some("wrong"), "{}").0, 401);
        let (status, body) = post(addr, Some("t0ken"), r#"{"verdict": "real"}"#);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Ack") && body.contains("real"), "{body}");
        let (status, _) = send(addr, b"GET /api/runs HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
    }

    /// A number asked for and not given is an error, not the default.
    #[test]
    fn empty_numbers_are_refused() {
        let addr = start(Some("t0ken"));
        let (status, body) = send(addr, b"GET /api/runs?limit= HTTP/1.1\r\n\r\n");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("`limit=` is not a whole number"), "{body}");
    }

    /// DNS rebinding: a page of another site whose name now points at 127.0.0.1 sends its
    /// own name as Host; the open loopback API answers only its own names.
    #[test]
    fn a_loopback_server_refuses_a_host_that_is_not_loopback() {
        let addr = start(None);
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
        ] {
            let raw = format!("GET /api/runs HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let (status, body) = send(addr, raw.as_bytes());
            assert_eq!(status, 403, "{host}: {body}");
            assert!(body.contains("DNS rebinding"), "{body}");
        }
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9",
            "vane.localhost",
        ] {
            let raw = format!("GET /api/runs HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(send(addr, raw.as_bytes()).0, 200, "{host}");
        }
    }

    #[test]
    fn a_server_without_a_token_refuses_every_action() {
        let addr = start(None);
        let (status, body) = post(addr, Some("anything"), "{}");
        assert_eq!(status, 403);
        assert!(body.contains("--token-file"), "{body}");
    }

    #[test]
    fn other_addresses_need_a_token_to_start() {
        let refused = Server::bind("0.0.0.0:0".parse().unwrap(), None);
        assert!(matches!(refused, Err(ServerError::TokenRequired { .. })));
        let empty = Server::bind("0.0.0.0:0".parse().unwrap(), Some(String::new()));
        assert!(
            matches!(empty, Err(ServerError::TokenRequired { .. })),
            "an empty token is none"
        );
    }

    #[test]
    fn malformed_and_oversized_requests_are_400_with_a_json_reason() {
        let addr = start(Some("t"));
        let (status, body) = post(addr, Some("t"), "{not json");
        assert_eq!(status, 400);
        assert!(
            body.starts_with("{\"error\":\"the request body is not JSON"),
            "{body}"
        );

        let mut huge = b"GET /api/runs HTTP/1.1\r\nX-Filler: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        let (status, body) = send(addr, &huge);
        assert_eq!(status, 400);
        assert!(body.contains("larger than 16 KiB"), "{body}");

        let raw = format!(
            "POST /api/alerts/3/ack HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let (status, body) = send(addr, raw.as_bytes());
        assert_eq!(status, 400);
        assert!(body.contains("larger than 1 MiB"), "{body}");
    }

    /// Each panic used to keep its connection slot: after MAX_CONNECTIONS of them every
    /// request was answered 503 until a restart.
    #[test]
    fn a_panicking_handler_answers_500_and_leaks_no_connection_slot() {
        let addr = serve(Arc::new(Panics), None);
        for _ in 0..=MAX_CONNECTIONS {
            let (status, body) = send(addr, b"GET /api/alerts HTTP/1.1\r\n\r\n");
            assert_eq!(status, 500, "{body}");
            let error: Value = serde_json::from_str(&body).expect("a JSON body");
            let message = error["error"].as_str().expect("an error message");
            assert!(
                message.contains("GET /api/alerts failed inside vane"),
                "{message}"
            );
        }
        let (status, body) = send(addr, b"GET /api/runs HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200, "{body}");
    }

    /// The read timeout used to restart with every byte: MAX_CONNECTIONS clients sending a
    /// header byte every few seconds held every slot for as long as they liked.
    #[test]
    fn a_client_trickling_its_request_is_cut_off_at_the_deadline() {
        let deadline = Duration::from_secs(1);
        let addr = serve_within(Arc::new(Echo), None, deadline);
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET /api/runs HTTP/1.1\r\n").unwrap();
        // Bounds the test on a server that never cuts the client off.
        slow.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0; 1024];
        while started.elapsed() < deadline * 5 {
            // Each byte well within a per-read timeout, as the attack sends them.
            if slow.write_all(b"X").is_err() {
                break;
            }
            match slow.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if !answer.is_empty() {
                // The head is here: stop sending, and read the rest to the end.
                slow.set_read_timeout(Some(deadline * 3)).unwrap();
                let _ = slow.read_to_end(&mut answer);
                break;
            }
            if started.elapsed() > deadline / 2 {
                // Meanwhile everyone else is served.
                let (status, body) = send(addr, b"GET /api/runs HTTP/1.1\r\n\r\n");
                assert_eq!(status, 200, "{body}");
            }
        }
        let cut_off = started.elapsed();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout"),
            "after {cut_off:?}: {answer:?}"
        );
        assert!(answer.contains("not all sent within 1 seconds"), "{answer}");
        assert!(
            cut_off >= deadline && cut_off < deadline * 4,
            "cut off after {cut_off:?}"
        );
    }
}
