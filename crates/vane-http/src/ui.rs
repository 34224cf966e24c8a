//! The web UI: one HTML page, a script and a style sheet, compiled into the binary so that
//! there is nothing to build, install or fetch. The page reads the same JSON API as every
//! other client; actions send the API token the person pasted into it.

/// A file of the UI: its content type and bytes.
pub(crate) struct Asset {
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

/// The asset at `path`, if the UI has one. Pages are routed in the browser (`/#/dags/etl`),
/// so every page is `/`.
pub(crate) fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (_, &[u8]) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("../ui/index.html"),
        ),
        "/ui/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../ui/app.js"),
        ),
        "/ui/app.css" => ("text/css; charset=utf-8", include_bytes!("../ui/app.css")),
        "/favicon.ico" | "/ui/icon.svg" => ("image/svg+xml", include_bytes!("../ui/icon.svg")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// Everything the page loads comes from this server; nothing inline, nothing remote, so an
/// injected string can never run as script.
pub(crate) const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_the_server_has() {
        let page = std::str::from_utf8(asset("/").unwrap().body).unwrap();
        let local = page
            .split(['"', '\''])
            .filter(|s| s.starts_with('/') && !s.starts_with("/api/"));
        for reference in local {
            assert!(
                asset(reference).is_some(),
                "index.html loads {reference}, which is not served"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        let script = std::str::from_utf8(asset("/ui/app.js").unwrap().body).unwrap();
        assert!(
            !script.contains("innerHTML"),
            "build elements with textContent so that names from DAG files are never markup"
        );
    }
}
