//! Delivery: a JSON POST over HTTP/1.1 (plain or TLS) in the webhook's `format`, a command
//! reading the JSON on stdin, or the log.
//!
//! The webhook client is a POST over `vane-net` (plain TCP or `rustls`, one deadline for the
//! whole exchange) rather than an HTTP crate: a POST with a timeout is all alerts need. Plain
//! and TLS share everything but the handshake, so timeouts, retries and error messages cannot
//! drift apart.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{CertificateError, ClientConfig, RootCertStore};
use serde_json::Value;
use vane_dag::config::{Host, Url};

use crate::{CaFile, Channel, ChannelKind};

/// Sends `payload` (vane's JSON, see [`crate::evaluate`]) to `channel`, reshaped into the
/// webhook's `format`; the error says what went wrong, for the record and the person reading
/// `vane alerts`.
///
/// # Errors
/// The last try's failure: unreachable host, timeout, a non-2xx answer, a command that failed,
/// a PagerDuty routing key whose environment variable is not set.
pub fn deliver(channel: &Channel, payload: &Value) -> Result<(), String> {
    match &channel.kind {
        ChannelKind::Log => {
            tracing::warn!(
                channel = %channel.name,
                oncall = payload["oncall"].as_str().unwrap_or("-"),
                alerts = payload["alerts"].as_array().map_or(0, Vec::len),
                "Alert: {}",
                payload["title"].as_str().unwrap_or("")
            );
            Ok(())
        }
        ChannelKind::Webhook {
            url,
            timeout,
            retries,
            ca,
            format,
        } => {
            let shown = url.without_secrets();
            let bodies = crate::format::bodies(format, payload)
                .map_err(|e| format!("webhook {shown}: {e}"))?;
            // One after the other, each with its retries. After one that failed them all the
            // rest are not tried: the endpoint is down or refuses vane, and trying each would
            // multiply the wait by the number of alerts.
            for (i, body) in bodies.iter().enumerate() {
                if let Err(e) =
                    post_retrying(url, &body.to_string(), *timeout, *retries, ca.as_ref())
                {
                    return Err(match bodies.len() {
                        1 => format!("webhook {shown}: {e}"),
                        n => format!(
                            "webhook {shown}: event {} of {n} not delivered, and the {} after it not tried: {e}",
                            i + 1,
                            n - i - 1
                        ),
                    });
                }
            }
            Ok(())
        }
        ChannelKind::Command { command, timeout } => {
            run_command(command, payload, *timeout).map_err(|e| format!("command `{command}`: {e}"))
        }
    }
}

/// Where a webhook's POST goes, from its URL (parsed when the config was loaded).
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    /// For DNS and TLS: a name, or an IP address without brackets.
    host: String,
    port: u16,
    /// The `Host` header: the host as written in a URL (IPv6 in brackets) and the port.
    authority: String,
    /// The request line's target: path and query.
    path: String,
}

fn target(url: &Url) -> Result<Target, String> {
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err("only https:// and http:// URLs are supported".to_owned()),
    };
    let port = url.port_or_default().unwrap_or(if tls { 443 } else { 80 });
    let host = match url.host() {
        Host::Name(name) => name.clone(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    Ok(Target {
        tls,
        host,
        port,
        authority: format!("{}:{port}", url.host()),
        path: url.request_target(),
    })
}

/// [`post`], tried again `retries` times after a failure with a doubling delay.
fn post_retrying(
    url: &Url,
    body: &str,
    timeout: Duration,
    retries: u32,
    ca: Option<&CaFile>,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(500);
    let mut result = post(url, body, timeout, ca);
    for _ in 0..retries {
        if result.is_ok() {
            break;
        }
        std::thread::sleep(delay);
        delay *= 2;
        result = post(url, body, timeout, ca);
    }
    result
}

fn post(url: &Url, body: &str, timeout: Duration, ca: Option<&CaFile>) -> Result<(), String> {
    let Target {
        tls,
        host,
        port,
        authority,
        path,
    } = target(url)?;
    let stream = vane_net::connect(&host, port, Instant::now() + timeout)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: vane\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = if tls {
        vane_net::tls(stream, &host, client_config(ca)?).map_err(|e| match e {
            Ok(sentence) => sentence,
            Err(e) => handshake_error(&e, &host, timeout, ca),
        })?
    } else {
        vane_net::Conn::Plain(stream)
    };
    exchange(&mut conn, &request, timeout)
}

/// Sends the request and reads the status line, over plain TCP or TLS alike.
fn exchange(
    stream: &mut (impl Read + Write),
    request: &str,
    timeout: Duration,
) -> Result<(), String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending: {e}"))?;
    // The status line is all that matters; the body of the answer is not read.
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer within {timeout:?}: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or("");
    let code: Option<u16> = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(_) => Err(format!("answered `{status_line}`")),
        None => Err("the server closed the connection without an HTTP answer".to_owned()),
    }
}

/// Trust for one channel: its `ca_file` alone when it has one, or else the system's store, which
/// is where a corporate network's own CA is installed and what curl on the same host trusts.
fn client_config(ca: Option<&CaFile>) -> Result<Arc<ClientConfig>, String> {
    let Some(ca) = ca else {
        return vane_net::system_config()
            .map_err(|e| format!("{e}, or set ca_file on the channel"));
    };
    let mut roots = RootCertStore::empty();
    for (i, cert) in ca.certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} of ca_file {} cannot be trusted: {e}",
                i + 1,
                ca.path.display()
            )
        })?;
    }
    vane_net::config_with(roots)
}

/// A failed handshake in terms of what to change: a certificate problem says which, and whether
/// `ca_file` is the fix.
fn handshake_error(e: &io::Error, host: &str, timeout: Duration, ca: Option<&CaFile>) -> String {
    let Some(rustls::Error::InvalidCertificate(problem)) =
        e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no TLS handshake within {timeout:?}: {e}")
            }
            _ => format!("TLS handshake with {host} failed: {e}"),
        };
    };
    let unknown_issuer = match ca {
        Some(ca) => format!(
            "none of the CAs in ca_file {} signed it, and they replace the system's; point ca_file at the CA that did",
            ca.path.display()
        ),
        None => "none of the system's CAs signed it; if a private CA did, set ca_file = \"path/to/ca.pem\" on the channel to that CA's certificate".to_owned(),
    };
    match problem {
        CertificateError::UnknownIssuer => {
            format!("the certificate of {host} has an unknown issuer: {unknown_issuer}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the certificate of {host} is not valid for that name ({problem}); write the host name it was issued for in url"
            )
        }
        _ => format!("the certificate of {host} is refused: {problem}"),
    }
}

fn run_command(command: &str, payload: &Value, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env(
            "VANE_ALERT_ONCALL",
            payload["oncall"].as_str().unwrap_or(""),
        )
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // Written from a thread so a command that never reads cannot block past its timeout;
        // one that closes its input early is free to.
        let body = payload.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(body.as_bytes());
        });
    }
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("exited with {status}")),
            None if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {}; killed",
                    vane_dag::format_duration(timeout)
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("a URL")
    }

    #[test]
    fn errors_show_a_webhook_url_without_its_secret_path() {
        assert_eq!(
            url("https://hooks.slack.com/services/T00/B00/XXXX").without_secrets(),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            url("http://127.0.0.1:8099/").without_secrets(),
            "http://127.0.0.1:8099/"
        );
        assert_eq!(
            url("http://relay:8099").without_secrets(),
            "http://relay:8099"
        );
        assert_eq!(
            url("https://user:secret@relay/?token=x").without_secrets(),
            "https://relay/…"
        );
    }

    #[test]
    fn urls_become_host_port_header_and_request_target() {
        let target = |tls, host: &str, port, authority: &str, path: &str| Target {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path: path.to_owned(),
        };
        assert_eq!(
            super::target(&url("http://127.0.0.1:9000/hook")),
            Ok(target(false, "127.0.0.1", 9000, "127.0.0.1:9000", "/hook"))
        );
        assert_eq!(
            super::target(&url("http://relay.local")),
            Ok(target(false, "relay.local", 80, "relay.local:80", "/"))
        );
        assert_eq!(
            super::target(&url("https://hooks.slack.com/services/T0/B0/x")),
            Ok(target(
                true,
                "hooks.slack.com",
                443,
                "hooks.slack.com:443",
                "/services/T0/B0/x"
            ))
        );
        assert_eq!(
            super::target(&url("https://[::1]:8443")),
            Ok(target(true, "::1", 8443, "[::1]:8443", "/"))
        );
        // The two bugs of the old splitter: an IPv6 host without a port, a query after the host.
        assert_eq!(
            super::target(&url("https://[::1]/hook")),
            Ok(target(true, "::1", 443, "[::1]:443", "/hook"))
        );
        assert_eq!(
            super::target(&url("https://host?x=1")),
            Ok(target(true, "host", 443, "host:443", "/?x=1"))
        );
        assert!(super::target(&url("ftp://x")).is_err());
    }

    #[test]
    fn a_webhook_nobody_listens_to_is_an_error_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = post(
            &url(&format!("http://127.0.0.1:{port}/")),
            "{}",
            Duration::from_secs(5),
            None,
        )
        .expect_err("nobody listens");
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[test]
    fn pagerduty_events_after_one_that_failed_are_not_tried() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let channel = Channel {
            name: "pd".to_owned(),
            kind: ChannelKind::Webhook {
                url: url(&format!("http://127.0.0.1:{port}/v2/enqueue")),
                timeout: Duration::from_secs(5),
                retries: 0,
                ca: None,
                format: crate::WebhookFormat::PagerDuty {
                    routing_key: crate::RoutingKey::Inline("K".to_owned()),
                },
            },
            min_severity: crate::AlertSeverity::Info,
        };
        let alert = |id: i64| serde_json::json!({"id": id, "severity": "critical", "dag": "etl"});
        let payload = serde_json::json!({"alerts": [alert(1), alert(2), alert(3)]});
        let err = deliver(&channel, &payload).expect_err("nobody listens");
        assert!(
            err.contains(
                "event 1 of 3 not delivered, and the 2 after it not tried: cannot connect"
            ),
            "{err}"
        );
    }
}
