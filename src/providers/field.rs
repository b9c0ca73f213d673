//! References to request parts, as written in provider files: `header:NAME`, `json:/pointer`.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use serde_json::Value;

/// The parts of a buffered request that provider rules read.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw body bytes.
    pub body: &'a [u8],
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<&'a Value>,
}

/// Where a value (event id, type, handshake answer) comes from.
#[derive(Debug, Clone)]
pub enum Field {
    /// A request header.
    Header(HeaderName),
    /// A scalar in the JSON body, by RFC 6901 pointer.
    Json(String),
}

impl Field {
    /// Parses `header:NAME` or `json:/pointer`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("header:") {
            return header_name(name).map(Field::Header);
        }
        if let Some(pointer) = text.strip_prefix("json:") {
            return json_pointer(pointer).map(|p| Field::Json(p.to_owned()));
        }
        Err(format!(
            "`{text}` is not a field reference: write `header:NAME` or `json:/pointer`"
        ))
    }

    /// The value in `req`, if present and a string or number.
    pub fn get<'a>(&self, req: &RequestView<'a>) -> Option<Cow<'a, str>> {
        match self {
            Field::Header(name) => req
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(Cow::Borrowed),
            Field::Json(pointer) => req.json?.pointer(pointer).and_then(scalar_text),
        }
    }
}

/// A header name, checked.
pub fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

/// A JSON pointer, checked for syntax.
pub fn json_pointer(pointer: &str) -> Result<&str, String> {
    if pointer.starts_with('/') {
        Ok(pointer)
    } else {
        Err(format!(
            "`{pointer}` is not a JSON pointer: it must start with `/`, e.g. `/id`"
        ))
    }
}

/// Strings as they are, numbers as written, booleans as `true`/`false`; other values none.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_and_json_scalars() {
        let mut headers = HeaderMap::new();
        headers.insert("x-id", "abc".parse().unwrap());
        let json = serde_json::json!({"a": {"b": 7}, "s": "x", "o": {}});
        let req = RequestView {
            headers: &headers,
            body: b"",
            json: Some(&json),
        };
        assert_eq!(
            Field::parse("header:X-Id").unwrap().get(&req).unwrap(),
            "abc"
        );
        assert_eq!(Field::parse("json:/a/b").unwrap().get(&req).unwrap(), "7");
        assert_eq!(Field::parse("json:/s").unwrap().get(&req).unwrap(), "x");
        assert!(Field::parse("json:/o").unwrap().get(&req).is_none());
        assert!(Field::parse("json:/missing").unwrap().get(&req).is_none());
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(
            Field::parse("json:id")
                .unwrap_err()
                .contains("must start with `/`")
        );
        assert!(Field::parse("body:/x").unwrap_err().contains("header:NAME"));
        assert!(
            Field::parse("header:bad name")
                .unwrap_err()
                .contains("not a valid header")
        );
    }
}
