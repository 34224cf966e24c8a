//! Delivery: a JSON POST over plain HTTP/1.1, a command reading the JSON on stdin, or the log.
//!
//! The webhook client is a few dozen lines over `std::net::TcpStream` rather than an HTTP
//! crate: a POST with a timeout is all alerts need, and it keeps the binary free of a TLS
//! stack. `https://` URLs go through a local relay (see the README).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vane_dag::{Channel, ChannelKind};

/// Sends `payload` to `channel`; the error says what went wrong, for the record and the person
/// reading `vane alerts`.
///
/// # Errors
/// The last try's failure: unreachable host, timeout, a non-2xx answer, a command that failed.
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
        } => {
            let body = payload.to_string();
            let mut delay = Duration::from_millis(500);
            let mut result = post(url, &body, *timeout);
            for _ in 0..*retries {
                if result.is_ok() {
                    break;
                }
                std::thread::sleep(delay);
                delay *= 2;
                result = post(url, &body, *timeout);
            }
            result.map_err(|e| format!("webhook {url}: {e}"))
        }
        ChannelKind::Command { command, timeout } => {
            run_command(command, payload, *timeout).map_err(|e| format!("command `{command}`: {e}"))
        }
    }
}

/// `http://host[:port][/path]` split into (host, port, path).
fn split_url(url: &str) -> Result<(&str, u16, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported; use a local relay for https")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h,
            p.parse()
                .map_err(|_| format!("`{p}` is not a port number"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    Ok((host, port, path))
}

fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let (host, port, path) = split_url(url)?;
    let addrs: Vec<_> = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: vane\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
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

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9000/hook"),
            Ok(("127.0.0.1", 9000, "/hook"))
        );
        assert_eq!(
            split_url("http://relay.local"),
            Ok(("relay.local", 80, "/"))
        );
        assert!(split_url("https://x").is_err());
    }

    #[test]
    fn a_webhook_nobody_listens_to_is_an_error_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = post(
            &format!("http://127.0.0.1:{port}/"),
            "{}",
            Duration::from_secs(5),
        )
        .expect_err("nobody listens");
        assert!(err.contains("cannot connect"), "{err}");
    }
}
