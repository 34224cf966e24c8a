//! AWS Signature Version 4 for S3 requests, as AWS documents it ("Authenticating Requests:
//! Using the Authorization Header"), with the payload's SHA-256 in `x-amz-content-sha256`.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Access key, secret and, for temporary credentials, the session token.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Percent-encodes `text` as SigV4 wants: every byte but `A-Za-z0-9-_.~` (and `/` when
/// `slash` is kept, for paths).
pub(crate) fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What is signed of a request.
pub(crate) struct ToSign<'a> {
    pub(crate) method: &'a str,
    /// `host[:port]`, as sent in `Host`.
    pub(crate) host: &'a str,
    /// Already encoded with [`uri_encode`] (slashes kept).
    pub(crate) path: &'a str,
    /// Raw (not encoded) query parameters.
    pub(crate) query: &'a [(&'a str, &'a str)],
    /// Other headers to sign, names in lower case.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    pub(crate) payload_sha256: &'a str,
    pub(crate) region: &'a str,
    pub(crate) time: DateTime<Utc>,
}

/// The headers to send with the request: `Authorization`, `x-amz-date`,
/// `x-amz-content-sha256` and, with temporary credentials, `x-amz-security-token`.
pub(crate) fn sign(req: &ToSign<'_>, creds: &Credentials) -> Vec<(String, String)> {
    let amz_date = req.time.format("%Y%m%dT%H%M%SZ").to_string();
    let day = req.time.format("%Y%m%d").to_string();
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.to_owned()),
        ("x-amz-content-sha256".into(), req.payload_sha256.to_owned()),
        ("x-amz-date".into(), amz_date.clone()),
    ];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.extend(
        req.headers
            .iter()
            .map(|(k, v)| ((*k).to_ascii_lowercase(), v.trim().to_owned())),
    );
    headers.sort();
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method, req.path, req.payload_sha256
    );
    let scope = format!("{day}/{}/s3/aws4_request", req.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = [req.region.as_bytes(), b"s3", b"aws4_request"].iter().fold(
        hmac(
            format!("AWS4{}", creds.secret_key).as_bytes(),
            day.as_bytes(),
        ),
        |key, part| hmac(&key, part),
    );
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let mut out: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(k, _)| k.starts_with("x-amz-"))
        .collect();
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_matches_the_rfc_vector() {
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The "GET Object" example of AWS's S3 documentation ("Example: GET Object", Signature
    /// Version 4), signature and all.
    #[test]
    fn the_signature_is_the_one_aws_documents() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let empty = sha256_hex(b"");
        let headers = sign(
            &ToSign {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: &[],
                headers: &[("range", "bytes=0-9")],
                payload_sha256: &empty,
                region: "us-east-1",
                time: DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z")
                    .unwrap()
                    .to_utc(),
            },
            &creds,
        );
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(headers.contains(&("x-amz-date".into(), "20130524T000000Z".into())));
    }

    #[test]
    fn keys_are_encoded_as_sigv4_wants() {
        assert_eq!(uri_encode("a b/c~d+é", true), "a%20b/c~d%2B%C3%A9");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }
}
