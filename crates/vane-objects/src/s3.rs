//! The S3 backend: PUT, GET, HEAD, DELETE and ListObjectsV2, signed with AWS Signature V4,
//! over `vane-net`.
//!
//! Path-style addressing (`endpoint/bucket/key`) when an endpoint is given, as MinIO, Ceph and
//! moto expect; virtual-hosted (`bucket.s3.region.amazonaws.com/key`) for AWS itself. An
//! object is one PUT, so at most 5 GiB (S3's limit for a single PUT).

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::sigv4::{Credentials, ToSign, hex, sha256_hex, sign, uri_encode};
use crate::{ObjectError, Objects, check_key};

/// A request that moves no object's body (HEAD, DELETE, a listing page, a small PUT).
const SMALL: Duration = Duration::from_secs(30);
/// A file going up or down: large models take a while, a dead server still ends.
const TRANSFER: Duration = Duration::from_secs(30 * 60);
/// The most of an error's or a listing's body read.
const MAX_XML: u64 = 8 * 1024 * 1024;

/// Where the server is.
#[derive(Debug, Clone)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(text: &str) -> Result<Self, ObjectError> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(ObjectError(format!(
                "endpoint `{text}` must start with http:// or https://"
            )));
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port.parse().map_err(|_| {
                    ObjectError(format!("endpoint `{text}` has a port that is not a number"))
                })?;
                (host.to_owned(), port)
            }
            _ => (authority.to_owned(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(ObjectError(format!(
                "endpoint `{text}` must be a scheme and host only, e.g. http://minio:9000"
            )));
        }
        Ok(Self { tls, host, port })
    }

    /// `Host` as sent and signed: the port only when it is not the scheme's.
    fn authority(&self) -> String {
        if self.port == if self.tls { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An S3 bucket, or a prefix in one.
#[derive(Debug, Clone)]
pub struct S3 {
    bucket: String,
    /// Without leading or trailing `/`; may be empty.
    prefix: String,
    region: String,
    endpoint: Endpoint,
    path_style: bool,
    creds: Credentials,
}

/// What a request sends.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file, its length and SHA-256.
    File(&'a Path, u64, String),
}

impl S3 {
    /// Reads `s3://bucket/prefix?endpoint=…&region=…`, the rest from the environment (`env`):
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL`.
    ///
    /// # Errors
    /// No bucket, an unknown setting, or no credentials: the message names the fix.
    pub fn from_url(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ObjectError> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(ObjectError(format!(
                "`{url}` names no bucket: write s3://BUCKET/optional/prefix"
            )));
        }
        let (mut endpoint, mut region) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => endpoint = Some(v.to_owned()),
                Some(("region", v)) => region = Some(v.to_owned()),
                _ => {
                    return Err(ObjectError(format!(
                        "`{url}`: unknown setting `{pair}`; the settings are endpoint=URL and region=NAME"
                    )));
                }
            }
        }
        let region = region
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = endpoint.or_else(|| env("AWS_ENDPOINT_URL"));
        let path_style = endpoint.is_some();
        let endpoint = match endpoint {
            Some(e) => Endpoint::parse(&e)?,
            None => Endpoint {
                tls: true,
                host: format!("{bucket}.s3.{region}.amazonaws.com"),
                port: 443,
            },
        };
        let (Some(access_key), Some(secret_key)) =
            (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(ObjectError(format!(
                "no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones) in vane's environment"
            )));
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region,
            endpoint,
            path_style,
            creds: Credentials {
                access_key,
                secret_key,
                session_token: env("AWS_SESSION_TOKEN"),
            },
        })
    }

    /// Creates the bucket (a test's or a first set-up's; in production it is made once, by
    /// whoever owns the account).
    ///
    /// # Errors
    /// The server refuses.
    pub fn create_bucket(&self) -> Result<(), ObjectError> {
        let path = self.bucket_path();
        let response = self.send("PUT", &path, &[], Body::Empty, SMALL)?;
        self.expect_ok(response, "create the bucket")
    }

    fn bucket_path(&self) -> String {
        if self.path_style {
            format!("/{}", uri_encode(&self.bucket, false))
        } else {
            "/".to_owned()
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn object_path(&self, key: &str) -> Result<String, ObjectError> {
        check_key(key)?;
        let encoded = uri_encode(&self.full_key(key), true);
        Ok(if self.path_style {
            format!("/{}/{encoded}", uri_encode(&self.bucket, false))
        } else {
            format!("/{encoded}")
        })
    }

    /// Sends one signed request; the answer's head, its body still to read.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Body<'_>,
        timeout: Duration,
    ) -> Result<vane_net::Response<vane_net::Conn>, ObjectError> {
        let fail = |e: String| ObjectError(format!("{method} {}: {e}", self.location()));
        let (length, payload_sha256) = match &body {
            Body::Empty => (0, sha256_hex(b"")),
            Body::Bytes(b) => (b.len() as u64, sha256_hex(b)),
            Body::File(_, len, sha) => (*len, sha.clone()),
        };
        let host = self.endpoint.authority();
        let signed = sign(
            &ToSign {
                method,
                host: &host,
                path,
                query,
                headers: &[],
                payload_sha256: &payload_sha256,
                region: &self.region,
                time: chrono::Utc::now(),
            },
            &self.creds,
        );
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
                .collect();
            format!("{path}?{}", q.join("&"))
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vane\r\nContent-Length: {length}\r\nConnection: close\r\n"
        );
        for (k, v) in &signed {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let deadline = Instant::now() + timeout;
        let tcp =
            vane_net::connect(&self.endpoint.host, self.endpoint.port, deadline).map_err(fail)?;
        let mut conn = if self.endpoint.tls {
            let config = vane_net::system_config().map_err(fail)?;
            vane_net::tls(tcp, &self.endpoint.host, config).map_err(|e| {
                fail(match e {
                    Ok(sentence) => sentence,
                    Err(io) => format!("TLS handshake with {} failed: {io}", self.endpoint.host),
                })
            })?
        } else {
            vane_net::Conn::Plain(tcp)
        };
        let sent = (|| -> io::Result<()> {
            conn.write_all(head.as_bytes())?;
            match body {
                Body::Empty => {}
                Body::Bytes(b) => conn.write_all(b)?,
                Body::File(path, _, _) => {
                    io::copy(&mut fs::File::open(path)?, &mut conn)?;
                }
            }
            conn.flush()
        })();
        sent.map_err(|e| fail(format!("sending: {e}")))?;
        vane_net::read_head(conn).map_err(|e| fail(format!("no answer: {e}")))
    }

    /// An error for a refused request, with S3's code and message and what to do.
    fn refused(&self, response: vane_net::Response<vane_net::Conn>, doing: &str) -> ObjectError {
        let status = response.status;
        let reason = response.reason.clone();
        let body = response.read_body(MAX_XML).unwrap_or_default();
        let xml = String::from_utf8_lossy(&body);
        let code = tag(&xml, "Code").unwrap_or_default();
        let message = tag(&xml, "Message").unwrap_or_default();
        let hint = match (status, code.as_str()) {
            (_, "NoSuchBucket") => format!(
                "; create bucket `{}` first (e.g. `aws s3 mb s3://{}`)",
                self.bucket, self.bucket
            ),
            (_, "RequestTimeTooSkewed") => "; this host's clock is off: run NTP".to_owned(),
            (403, _) | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, their rights on the bucket, and the region".to_owned()
            }
            _ => String::new(),
        };
        let said = if code.is_empty() {
            String::new()
        } else {
            format!(": {code}: {message}")
        };
        ObjectError(format!(
            "cannot {doing} in {}: HTTP {status} {reason}{said}{hint}",
            self.location()
        ))
    }

    fn expect_ok(
        &self,
        response: vane_net::Response<vane_net::Conn>,
        doing: &str,
    ) -> Result<(), ObjectError> {
        if (200..300).contains(&response.status) {
            let _ = response.read_body(MAX_XML);
            return Ok(());
        }
        Err(self.refused(response, doing))
    }

    /// One page of ListObjectsV2: its keys and the token for the next page.
    fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), ObjectError> {
        let full = self.full_key(prefix);
        let mut query = vec![("list-type", "2"), ("prefix", full.as_str())];
        if let Some(token) = token {
            query.push(("continuation-token", token));
        }
        let response = self.send("GET", &self.bucket_path(), &query, Body::Empty, SMALL)?;
        if response.status != 200 {
            return Err(self.refused(response, &format!("list `{prefix}`")));
        }
        let body = response
            .read_body(MAX_XML)
            .map_err(|e| ObjectError(format!("listing {}: {e}", self.location())))?;
        let xml = String::from_utf8_lossy(&body);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let keys = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| unescape(k)))
            .filter_map(|k| k.get(strip..).map(str::to_owned))
            .collect();
        let next = (tag(&xml, "IsTruncated").as_deref() == Some("true"))
            .then(|| tag(&xml, "NextContinuationToken"))
            .flatten();
        Ok((keys, next))
    }
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// XML's five entities and numeric references, as S3 escapes keys.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

fn file_sha256(path: &Path) -> io::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((size, hex(&hasher.finalize())))
}

impl Objects for S3 {
    fn location(&self) -> String {
        let at = if self.path_style {
            format!(
                " at {}://{}",
                if self.endpoint.tls { "https" } else { "http" },
                self.endpoint.authority()
            )
        } else {
            String::new()
        };
        if self.prefix.is_empty() {
            format!("s3://{}{at}", self.bucket)
        } else {
            format!("s3://{}/{}{at}", self.bucket, self.prefix)
        }
    }

    fn put(&self, key: &str, body: &[u8]) -> Result<(), ObjectError> {
        let path = self.object_path(key)?;
        let response = self.send("PUT", &path, &[], Body::Bytes(body), SMALL)?;
        self.expect_ok(response, &format!("put `{key}`"))
    }

    fn put_file(&self, key: &str, file: &Path) -> Result<(), ObjectError> {
        let path = self.object_path(key)?;
        let (size, sha) = file_sha256(file)
            .map_err(|e| ObjectError::io(format!("cannot read {}", file.display()), &e))?;
        let response = self.send("PUT", &path, &[], Body::File(file, size, sha), TRANSFER)?;
        self.expect_ok(response, &format!("put `{key}`"))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let path = self.object_path(key)?;
        let response = self.send("GET", &path, &[], Body::Empty, TRANSFER)?;
        match response.status {
            200 => response
                .read_body(u64::MAX / 2)
                .map(Some)
                .map_err(|e| ObjectError(format!("reading `{key}` from {}: {e}", self.location()))),
            404 => Ok(None),
            _ => Err(self.refused(response, &format!("get `{key}`"))),
        }
    }

    fn get_to_file(&self, key: &str, target: &Path) -> Result<bool, ObjectError> {
        let path = self.object_path(key)?;
        let response = self.send("GET", &path, &[], Body::Empty, TRANSFER)?;
        match response.status {
            200 => {}
            404 => return Ok(false),
            _ => return Err(self.refused(response, &format!("get `{key}`"))),
        }
        let length: Option<u64> = response
            .header("content-length")
            .and_then(|v| v.parse().ok());
        let written = (|| -> io::Result<()> {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let partial = target.with_extension(format!("{}.partial", std::process::id()));
            let mut file = fs::File::create(&partial)?;
            let copied = io::copy(&mut response.into_body(), &mut file);
            let complete = match copied {
                Ok(n) if length.is_none_or(|l| l == n) => file.sync_all(),
                Ok(n) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("got {n} of {} bytes", length.unwrap_or_default()),
                )),
                Err(e) => Err(e),
            };
            match complete.and_then(|()| fs::rename(&partial, target)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = fs::remove_file(&partial);
                    Err(e)
                }
            }
        })();
        written.map_err(|e| {
            ObjectError(format!(
                "cannot write `{key}` from {} to {}: {e}",
                self.location(),
                target.display()
            ))
        })?;
        Ok(true)
    }

    fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        let path = self.object_path(key)?;
        let response = self.send("HEAD", &path, &[], Body::Empty, SMALL)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(ObjectError(format!(
                "cannot look for `{key}` in {}: HTTP {status} {}",
                self.location(),
                response.reason
            ))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let (mut keys, mut token) = self.list_page(prefix, None)?;
        while let Some(next) = token {
            let (more, after) = self.list_page(prefix, Some(&next))?;
            keys.extend(more);
            token = after;
        }
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.object_path(key)?;
        let response = self.send("DELETE", &path, &[], Body::Empty, SMALL)?;
        if response.status == 404 {
            return Ok(());
        }
        self.expect_ok(response, &format!("delete `{key}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn urls_name_bucket_prefix_endpoint_and_region_and_credentials_come_from_the_environment() {
        let creds = env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        let s3 = S3::from_url(
            "s3://ml/vane/prod?endpoint=http://minio:9000&region=eu-west-1",
            &creds,
        )
        .unwrap();
        assert_eq!(s3.location(), "s3://ml/vane/prod at http://minio:9000");
        assert_eq!(
            s3.object_path("logs/a b").unwrap(),
            "/ml/vane/prod/logs/a%20b"
        );
        assert_eq!(s3.region, "eu-west-1");
        let aws = S3::from_url("s3://ml", &creds).unwrap();
        assert_eq!(aws.endpoint.host, "ml.s3.us-east-1.amazonaws.com");
        assert_eq!(aws.object_path("k").unwrap(), "/k");
        assert_eq!(aws.location(), "s3://ml");

        let e = S3::from_url("s3://ml", &env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
            "{e}"
        );
        let e = S3::from_url("s3:///x", &creds).unwrap_err().to_string();
        assert!(e.contains("names no bucket"), "{e}");
        let e = S3::from_url("s3://ml?endpont=x", &creds)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting `endpont=x`"), "{e}");
        let e = S3::from_url("s3://ml?endpoint=minio:9000", &creds)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must start with http://"), "{e}");
    }

    #[test]
    fn xml_entities_in_keys_are_decoded() {
        assert_eq!(unescape("a&amp;b&lt;&#x41;&#66;&bogus;"), "a&b<AB&bogus;");
        assert_eq!(
            tag("<r><Code>NoSuchKey</Code></r>", "Code").as_deref(),
            Some("NoSuchKey")
        );
    }
}
