//! A real S3-compatible server for tests: moto's server mode (`pip install 'moto[server]'`,
//! which `scripts/test` does), on an address the test picks, killed when dropped. Without it
//! the tests fail and say how to install it: a skipped test would prove nothing.

use std::net::{IpAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::S3;

pub struct S3Server {
    child: Child,
    /// `http://IP:PORT`.
    pub endpoint: String,
}

/// Credentials moto accepts (it does not check them unless told to).
pub const ACCESS_KEY: &str = "vane-test";
pub const SECRET_KEY: &str = "vane-test-secret";

impl S3Server {
    /// A server listening on `ip`.
    ///
    /// # Panics
    /// moto cannot be started or does not answer within 30 s.
    #[must_use]
    pub fn start(ip: IpAddr) -> Self {
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {ip}:{port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The storage URL of `bucket/prefix` on this server.
    #[must_use]
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3://{bucket}/{prefix}?endpoint={}", self.endpoint)
    }

    /// The bucket/prefix, opened with the test credentials; the bucket is created.
    ///
    /// # Panics
    /// The server refuses.
    #[must_use]
    pub fn bucket(&self, bucket: &str, prefix: &str) -> S3 {
        let s3 = S3::from_url(&self.url(bucket, prefix), &|name| match name {
            "AWS_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_owned()),
            _ => None,
        })
        .expect("a valid URL");
        s3.create_bucket().expect("moto creates the bucket");
        s3
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
