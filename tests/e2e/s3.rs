//! A real S3-compatible server for storage tests: moto's server mode (`pip install
//! 'moto[server]'`, which `scripts/test` does), started on an address the test picks and
//! killed when dropped. Without it the tests fail and say how to install it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::wait_for;

pub(crate) struct S3Server {
    child: Child,
    /// `http://IP:PORT`.
    pub(crate) endpoint: String,
}

impl S3Server {
    /// A server on `ip` holding one empty bucket, `bucket`.
    pub(crate) fn start(ip: Ipv4Addr, bucket: &str) -> Self {
        let port = TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", &ip.to_string(), "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): the S3 storage tests need it; install it with `pip install 'moto[server]'` (scripts/test does)"
                )
            });
        let server = Self {
            child,
            endpoint: format!("http://{ip}:{port}"),
        };
        wait_for("moto_server to answer", Duration::from_secs(30), || {
            TcpStream::connect((ip, port)).ok().map(drop)
        });
        let (status, body) = server.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
        server
    }

    /// Sends an unsigned request (moto does not check signatures unless told to); the status
    /// and the body of the answer.
    fn request(&self, method: &str, target: &str) -> (u16, String) {
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).expect("connect to moto_server");
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send a request to moto_server");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read moto_server's answer");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    /// The keys in `bucket` that start with `prefix`, in order.
    pub(crate) fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"));
        assert_eq!(status, 200, "listing {bucket}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
