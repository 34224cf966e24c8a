//! What the test servers share: reading one HTTP request off a stream, plain or TLS.

use std::io::Read;

/// The body of the one request on `stream`, read up to its `Content-Length`.
pub(crate) fn read_body(stream: &mut impl Read) -> Result<String, String> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before a whole request".to_owned());
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or("no Content-Length")?;
            if body.len() >= length {
                return Ok(body.to_owned());
            }
        }
    }
}

/// What a server that took the request answers.
pub(crate) const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
