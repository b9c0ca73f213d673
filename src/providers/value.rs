//! Values read from a request, as written in provider files: `header:NAME`, `json:/pointer`,
//! `query:NAME`, `form:NAME`, `literal:TEXT`, `hmac_sha256_hex:<value>`, or a template with
//! `{...}` placeholders of those forms (`"{json:/a}:{json:/b}"`).

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use http::HeaderName;
use serde_json::Value as Json;
use sha2::Sha256;

use super::request::RequestView;

/// A compiled value expression.
#[derive(Debug, Clone)]
pub enum Value {
    /// A request header.
    Header(HeaderName),
    /// A scalar in the JSON body.
    Json(String),
    /// A query parameter, decoded.
    Query(String),
    /// A form field of the body, decoded.
    Form(String),
    /// Fixed text.
    Literal(String),
    /// Text with placeholders; empty if any placeholder is missing.
    Template(Vec<Piece>),
    /// Hex HMAC-SHA256 of a value under the source's first secret (Zoom's `encryptedToken`).
    HmacSha256Hex(Box<Value>),
}

/// A piece of a template.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A value.
    Value(Value),
}

impl Value {
    /// Parses a value expression; templates are recognised by a `{`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(literal) = text.strip_prefix("literal:") {
            return Ok(Value::Literal(literal.to_owned()));
        }
        if text.contains('{') {
            return parse_template(text).map(Value::Template);
        }
        if let Some(inner) = text.strip_prefix("hmac_sha256_hex:") {
            return Value::parse(inner).map(|v| Value::HmacSha256Hex(Box::new(v)));
        }
        let (kind, arg) = text.split_once(':').ok_or_else(|| {
            format!("`{text}` is not a value: write header:NAME, json:/pointer, query:NAME, form:NAME or literal:TEXT")
        })?;
        match kind {
            "header" => header_name(arg).map(Value::Header),
            "json" => json_pointer(arg).map(|p| Value::Json(p.to_owned())),
            "query" => Ok(Value::Query(arg.to_owned())),
            "form" => Ok(Value::Form(arg.to_owned())),
            "literal" => Ok(Value::Literal(arg.to_owned())),
            _ => Err(format!(
                "`{text}` is not a value: write header:NAME, json:/pointer, query:NAME, form:NAME or literal:TEXT"
            )),
        }
    }

    /// Whether reading the value needs the parsed JSON body.
    pub fn reads_json(&self) -> bool {
        match self {
            Value::Json(_) => true,
            Value::Template(pieces) => pieces.iter().any(|p| matches!(p, Piece::Value(v) if v.reads_json())),
            Value::HmacSha256Hex(inner) => inner.reads_json(),
            Value::Header(_) | Value::Query(_) | Value::Form(_) | Value::Literal(_) => false,
        }
    }

    /// The value in `req`; `key` is the source's first secret (for `hmac_sha256_hex`).
    pub fn get<'a>(&self, req: &RequestView<'a>, key: Option<&[u8]>) -> Option<Cow<'a, str>> {
        match self {
            Value::Header(name) => req.headers.get(name).and_then(|v| v.to_str().ok()).map(Cow::Borrowed),
            Value::Json(pointer) => req.json?.pointer(pointer).and_then(scalar_text),
            Value::Query(name) => req.query_param(name),
            Value::Form(name) => req.form_param(name),
            Value::Literal(text) => Some(Cow::Owned(text.clone())),
            Value::Template(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Value(v) => out.push_str(&v.get(req, key).filter(|s| !s.is_empty())?),
                    }
                }
                Some(Cow::Owned(out))
            }
            Value::HmacSha256Hex(inner) => {
                let text = inner.get(req, key)?;
                let mut mac = Hmac::<Sha256>::new_from_slice(key?).ok()?;
                mac.update(text.as_bytes());
                Some(Cow::Owned(hex::encode(mac.finalize().into_bytes())))
            }
        }
    }
}

fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
        pieces.push(Piece::Value(Value::parse(&rest[open + 1..open + close])?));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// A header name, checked.
pub fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a valid header name"))
}

/// A JSON pointer, checked for syntax.
pub fn json_pointer(pointer: &str) -> Result<&str, String> {
    if pointer.starts_with('/') {
        Ok(pointer)
    } else {
        Err(format!("`{pointer}` is not a JSON pointer: it must start with `/`, e.g. `/id`"))
    }
}

/// Strings as they are, numbers as written, booleans as `true`/`false`; other values none.
pub fn scalar_text(value: &Json) -> Option<Cow<'_, str>> {
    match value {
        Json::String(s) => Some(Cow::Borrowed(s.as_str())),
        Json::Number(n) => Some(Cow::Owned(n.to_string())),
        Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    #[test]
    fn reads_every_kind_of_value() {
        let mut headers = HeaderMap::new();
        headers.insert("x-id", "abc".parse().unwrap());
        let json = serde_json::json!({"a": {"b": 7}, "s": "x", "o": {}});
        let mut req = RequestView::post(&headers, b"k=v%20w").with_json(Some(&json));
        req.query = Some("challenge=c%2F1&x=2");
        let get = |text: &str| Value::parse(text).unwrap().get(&req, Some(b"key")).map(|c| c.into_owned());
        assert_eq!(get("header:X-Id").as_deref(), Some("abc"));
        assert_eq!(get("json:/a/b").as_deref(), Some("7"));
        assert_eq!(get("json:/o"), None);
        assert_eq!(get("query:challenge").as_deref(), Some("c/1"));
        assert_eq!(get("form:k").as_deref(), Some("v w"));
        assert_eq!(get("literal:[accepted]").as_deref(), Some("[accepted]"));
        assert_eq!(get("{json:/s}:{json:/a/b}").as_deref(), Some("x:7"));
        assert_eq!(get("{json:/s}:{json:/missing}"), None);
        // HMAC-SHA256("key", "x"), computed with Python's hmac module.
        assert_eq!(
            get("hmac_sha256_hex:json:/s").as_deref(),
            Some("4fc3b7eaf34d7e594a6f51d9517ba543abf41067b27587ffd82ba3584e4d3cdd")
        );
    }

    #[test]
    fn rejects_malformed_expressions() {
        assert!(Value::parse("json:id").unwrap_err().contains("must start with `/`"));
        assert!(Value::parse("body:/x").unwrap_err().contains("header:NAME"));
        assert!(Value::parse("header:bad name").unwrap_err().contains("not a valid header"));
        assert!(Value::parse("{json:/a").unwrap_err().contains("unclosed"));
    }
}
