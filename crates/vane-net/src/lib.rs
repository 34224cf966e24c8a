//! A small blocking HTTP/1.1 client: what vane's webhooks and its S3 storage need, over
//! `std::net::TcpStream` with `rustls` in between for https.
//!
//! Every read and write of one exchange ends by one deadline, so a timeout bounds the whole
//! exchange (TLS handshake included) and a server trickling bytes cannot stretch it. One
//! request per connection (`Connection: close`): the callers send a request every few seconds
//! at most, where keeping connections alive would buy nothing and cost a pool.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A socket whose reads and writes all end by one deadline.
pub struct Deadlined {
    tcp: TcpStream,
    deadline: Instant,
}

impl Deadlined {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the time allowed for the exchange is used up",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.left()?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Connects to `host:port`, trying each of its addresses until `deadline`.
///
/// # Errors
/// A sentence naming the host or address and why.
pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<Deadlined, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("cannot connect to {addr}: no time left"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => return Ok(Deadlined { tcp, deadline }),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// A connection, plain or TLS, to send one request on.
pub enum Conn {
    Plain(Deadlined),
    Tls(Box<rustls::StreamOwned<ClientConnection, Deadlined>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// Wraps `stream` in TLS for `host` and completes the handshake on its own, so a refused
/// certificate is reported as that and not as a failure to send.
///
/// # Errors
/// The host name cannot be checked (`Err(Ok(sentence))`), or the handshake failed
/// (`Err(Err(io error))`, for the caller to explain in its own terms).
pub fn tls(
    stream: Deadlined,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<Conn, Result<String, io::Error>> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Ok(format!("`{host}` is not a host name TLS can check: {e}")))?;
    let conn =
        ClientConnection::new(config, name).map_err(|e| Ok(format!("cannot start TLS: {e}")))?;
    let mut owned = rustls::StreamOwned::new(conn, stream);
    while owned.conn.is_handshaking() {
        owned.conn.complete_io(&mut owned.sock).map_err(Err)?;
    }
    Ok(Conn::Tls(Box::new(owned)))
}

/// TLS trusting the system's CA store, as curl on the same host does (read once per process).
///
/// # Errors
/// The store holds no usable certificate: the sentence says how to install one.
pub fn system_config() -> Result<Arc<ClientConfig>, String> {
    static SYSTEM: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = SYSTEM.get() {
        return Ok(Arc::clone(config));
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(format!(
            "no trusted CA certificates in the system store ({why}): install the ca-certificates package or point SSL_CERT_FILE at a PEM bundle"
        ));
    }
    let config = config_with(roots)?;
    Ok(Arc::clone(SYSTEM.get_or_init(|| config)))
}

/// TLS trusting `roots` alone.
///
/// # Errors
/// rustls refuses the protocol versions (it does not with its defaults).
pub fn config_with(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    // The provider is named rather than taken from the process default, which would be
    // ambiguous (and panic) should another crate ever enable aws-lc-rs too.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An answer: its status, headers (names lower-cased) and the body, still to be read.
pub struct Response<R> {
    pub status: u16,
    /// The status line's text after the code, e.g. `Not Found`.
    pub reason: String,
    pub headers: Vec<(String, String)>,
    body: BufReader<R>,
}

impl<R: Read> Response<R> {
    /// The value of header `name` (lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as sent: by its length, chunked, or up to the end of the connection.
    #[must_use]
    pub fn into_body(self) -> Box<dyn Read + Send>
    where
        R: Send + 'static,
    {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = self.header("content-length").and_then(|v| v.parse().ok());
        match (chunked, length) {
            (true, _) => Box::new(Chunked {
                inner: self.body,
                left: 0,
                done: false,
            }),
            (false, Some(length)) => Box::new(self.body.take(length)),
            (false, None) => Box::new(self.body),
        }
    }

    /// The whole body, at most `max` bytes.
    ///
    /// # Errors
    /// It cannot be read, or is longer than `max`.
    pub fn read_body(self, max: u64) -> io::Result<Vec<u8>>
    where
        R: Send + 'static,
    {
        let mut out = Vec::new();
        self.into_body().take(max + 1).read_to_end(&mut out)?;
        if out.len() as u64 > max {
            return Err(io::Error::other(format!(
                "the answer is longer than {max} bytes"
            )));
        }
        Ok(out)
    }
}

/// A chunked body (RFC 9112 §7.1), trailers ignored.
struct Chunked<R> {
    inner: BufReader<R>,
    left: u64,
    done: bool,
}

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size `{}`", line.trim()),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// Reads the status line and headers of the answer on `stream`.
///
/// # Errors
/// The connection failed or closed before a whole head, or the head is not HTTP.
pub fn read_head<R: Read>(stream: R) -> io::Result<Response<R>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without an HTTP answer",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let status: u16 = code
        .parse()
        .ok()
        .filter(|_| version.starts_with("HTTP/"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP answer: `{}`", line.trim_end()),
            )
        })?;
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Ok(Response {
        status,
        reason,
        headers,
        body: reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_answer_reads_as_its_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n";
        let response = read_head(&raw[..]).unwrap();
        assert_eq!((response.status, response.reason.as_str()), (200, "OK"));
        assert_eq!(response.read_body(100).unwrap(), b"hello, world");
    }

    #[test]
    fn a_body_is_read_to_its_length_and_a_longer_one_than_allowed_is_refused() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef";
        let response = read_head(&raw[..]).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.read_body(10).unwrap(), b"abc");
        let response = read_head(&raw[..]).unwrap();
        assert!(response.read_body(2).is_err());
        assert!(read_head(&b"SSH-2.0\r\n\r\n"[..]).is_err());
    }
}
