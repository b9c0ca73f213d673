//! The parts of a buffered request that provider rules read, borrowed for one verification.

use std::borrow::Cow;

use http::{HeaderMap, Method};
use serde_json::Value;

/// A read-only view of a request.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The source's external URL without query, as the provider calls it (URL-signed schemes).
    pub public_url: Option<&'a str>,
    /// The raw body bytes.
    pub body: &'a [u8],
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<&'a Value>,
}

impl<'a> RequestView<'a> {
    /// A POST with these headers and body, nothing else (tests, tools).
    pub fn post(headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self { method: &Method::POST, headers, query: None, public_url: None, body, json: None }
    }

    /// The same request with its parsed JSON.
    pub fn with_json(self, json: Option<&'a Value>) -> Self {
        Self { json, ..self }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter, URL-decoded; the first if repeated.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        form_urlencoded::parse(self.query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A query parameter exactly as sent (not decoded).
    pub fn query_param_raw(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// A field of a form-encoded body, decoded; the first if repeated.
    pub fn form_param(&self, name: &str) -> Option<Cow<'a, str>> {
        form_urlencoded::parse(self.body).find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The URL the provider signed: `public_url` plus `?query` when there is one.
    pub fn signed_url(&self) -> Option<Cow<'a, str>> {
        let base = self.public_url?;
        Some(match self.query {
            Some(q) if !q.is_empty() => Cow::Owned(format!("{base}?{q}")),
            _ => Cow::Borrowed(base),
        })
    }
}

/// Parses bodies that look like JSON (first non-blank byte `{` or `[`); form bodies and the like
/// stay unparsed.
pub fn parse_json(body: &[u8]) -> Option<Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if matches!(first, b'{' | b'[') { serde_json::from_slice(body).ok() } else { None }
}
