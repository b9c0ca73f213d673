//! A request assembled from command-line arguments or a captured headers file, shared by
//! `sign` and `verify`.

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::providers::request::{RequestView, parse_json};

/// A request held by value.
#[derive(Debug, Clone)]
pub struct OwnedRequest {
    /// HTTP method.
    pub method: Method,
    /// Headers.
    pub headers: HeaderMap,
    /// The URL the provider called, without query.
    pub public_url: Option<String>,
    /// The query string.
    pub query: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The body parsed as JSON.
    pub json: Option<serde_json::Value>,
}

impl OwnedRequest {
    /// A request with `body`, `url` (query split off) and `headers` as `Name: value` lines; a
    /// first line like `POST /path?q HTTP/1.1` (as in a capture) sets the method and query.
    pub fn new(method: &str, url: Option<&str>, header_lines: &[String], body: Vec<u8>) -> Result<Self, String> {
        let mut method =
            Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not an HTTP method"))?;
        let (mut public_url, mut query) = match url.map(|u| u.split_once('?').unwrap_or((u, ""))) {
            Some((base, q)) => (Some(base.to_owned()), (!q.is_empty()).then(|| q.to_owned())),
            None => (None, None),
        };
        let mut headers = HeaderMap::new();
        for line in header_lines.iter().map(|l| l.trim_end_matches(['\r', '\n'])).filter(|l| !l.trim().is_empty()) {
            if let Some((verb, rest)) = line.split_once(' ')
                && rest.ends_with("HTTP/1.1")
                && !verb.ends_with(':')
            {
                method = Method::from_bytes(verb.as_bytes()).map_err(|_| format!("bad request line `{line}`"))?;
                let target = rest.trim_end_matches("HTTP/1.1").trim();
                if let Some((path, q)) = target.split_once('?') {
                    query = Some(q.to_owned());
                    if public_url.is_none() {
                        public_url = Some(path.to_owned());
                    }
                }
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| format!("`{line}` is not `Name: value`"))?;
            let name =
                HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("bad header name in `{line}`"))?;
            let value = HeaderValue::from_str(value.trim()).map_err(|_| format!("bad header value in `{line}`"))?;
            headers.append(name, value);
        }
        let json = parse_json(&body);
        Ok(Self { method, headers, public_url, query, body, json })
    }

    /// A view for provider rules.
    pub fn view(&self, with_json: bool) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
            public_url: self.public_url.as_deref(),
            body: &self.body,
            json: if with_json { self.json.as_ref() } else { None },
        }
    }
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| format!("stdin: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}
