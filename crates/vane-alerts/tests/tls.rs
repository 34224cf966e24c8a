//! Webhooks over https, against a TLS server on 127.0.0.1 whose certificate comes from the test
//! CA in `fixtures/` (see its README): no network beyond the loopback.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{Value, json};

mod common;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Serves one https connection on 127.0.0.1; the thread returns the request's body, or why
/// there was none (a client that refused the certificate ends the handshake).
fn serve_once() -> (u16, JoinHandle<Result<String, String>>) {
    let dir = fixtures();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("server.pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("certificate");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        let tls = ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(tls, tcp);
        let body = common::read_body(&mut stream)?;
        stream.write_all(common::OK).map_err(|e| e.to_string())?;
        stream.conn.send_close_notify();
        let _ = stream.flush();
        Ok(body)
    });
    (port, server)
}

/// The channel `hook` of a config in the fixtures folder, so `ca_file` is relative to it as it
/// would be to `vane.toml`'s.
fn alerts(source: &str) -> vane_alerts::AlertsConfig {
    let registry = vane_dag::Registry::none().section(&vane_alerts::ALERTS);
    let config = vane_dag::parse_config_in(source, &fixtures(), &registry).expect("valid");
    vane_alerts::AlertsConfig::of(&config)
}

fn channel(url: &str, extra: &str) -> vane_alerts::Channel {
    let source = format!(
        "[alerts.channels.hook]\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"5s\"\nretries = 0\n{extra}"
    );
    alerts(&source).channels["hook"].clone()
}

fn payload() -> Value {
    json!({"source": "vane", "title": "1 alert: run_failed", "alerts": [{"dag": "churn"}]})
}

#[test]
fn an_https_webhook_with_a_private_ca_delivers_the_payload() {
    for host in ["localhost", "127.0.0.1"] {
        let (port, server) = serve_once();
        let hook = channel(
            &format!("https://{host}:{port}/hook"),
            "ca_file = \"ca.pem\"\n",
        );
        let delivered = vane_alerts::deliver(&hook, &payload());
        let body = server.join().expect("server thread");
        assert_eq!(delivered, Ok(()), "to {host}");
        let received: Value = serde_json::from_str(&body.expect("a request")).expect("JSON");
        assert_eq!(received["title"], "1 alert: run_failed");
        assert_eq!(received["alerts"][0]["dag"], "churn");
    }
}

#[test]
fn without_the_ca_the_server_is_refused_naming_the_unknown_issuer() {
    let (port, server) = serve_once();
    let url = format!("https://localhost:{port}/hook");
    let err = vane_alerts::deliver(&channel(&url, ""), &payload()).expect_err("not trusted");
    assert!(
        err.starts_with(&format!("webhook https://localhost:{port}/…: ")),
        "the path (where services keep their secret) is not shown: {err}"
    );
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("ca_file"), "the fix: {err}");
    assert!(server.join().expect("server thread").is_err(), "no request");

    // A ca_file replaces the system's CAs rather than adding to them; this one holds only the
    // server's own certificate, which signed nothing.
    let (port, server) = serve_once();
    let url = format!("https://localhost:{port}/hook");
    let wrong = channel(&url, "ca_file = \"server.pem\"\n");
    let err = vane_alerts::deliver(&wrong, &payload()).expect_err("not trusted");
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("server.pem"), "names the file: {err}");
    assert!(server.join().expect("server thread").is_err(), "no request");
}

#[test]
fn a_server_that_never_finishes_the_handshake_is_given_up_on_at_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and then says nothing, as a stuck server would.
    let silent = std::thread::spawn(move || listener.accept().map(|(tcp, _)| tcp));
    let source = format!(
        "[alerts.channels.hook]\nkind = \"webhook\"\nurl = \"https://localhost:{port}/\"\ntimeout = \"300ms\"\nretries = 0\nca_file = \"ca.pem\"\n"
    );
    let hook = alerts(&source);
    let started = std::time::Instant::now();
    let err = vane_alerts::deliver(&hook.channels["hook"], &payload()).expect_err("silent");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{err}"
    );
    assert!(err.contains("no TLS handshake within 300ms"), "{err}");
    drop(silent.join());
}
