//! Provider handshakes (Slack `url_verification`, ...): matched on verified requests and answered
//! exactly as the provider expects; never published.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::field::{Field, RequestView, header_name, json_pointer};
use super::spec::{HandshakeSpec, RespondSpec};

/// A compiled handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Name for logs and metrics.
    pub name: String,
    json_equals: Vec<(String, String)>,
    header_equals: Vec<(HeaderName, String)>,
    status: StatusCode,
    content_type: HeaderValue,
    body: BodySource,
}

#[derive(Debug, Clone)]
enum BodySource {
    Field(Field),
    Literal(Bytes),
}

/// The answer to a matched handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: HeaderValue,
    /// Body bytes.
    pub body: Bytes,
}

impl Handshake {
    /// Compiles the spec; the error names the field.
    pub fn from_spec(spec: &HandshakeSpec) -> Result<Self, (String, String)> {
        let field = |f: &str| format!("handshakes.{}.{f}", spec.name);
        if spec.matcher.json_equals.is_empty() && spec.matcher.header_equals.is_empty() {
            return Err((
                field("match"),
                "needs at least one condition (json_equals or header_equals)".into(),
            ));
        }
        let json_equals = spec
            .matcher
            .json_equals
            .iter()
            .map(|(p, v)| json_pointer(p).map(|p| (p.to_owned(), v.clone())))
            .collect::<Result<_, _>>()
            .map_err(|e| (field("match.json_equals"), e))?;
        let header_equals = spec
            .matcher
            .header_equals
            .iter()
            .map(|(h, v)| header_name(h).map(|h| (h, v.clone())))
            .collect::<Result<_, _>>()
            .map_err(|e| (field("match.header_equals"), e))?;
        let (status, content_type, body) =
            compile_respond(&spec.respond).map_err(|(f, e)| (field(&f), e))?;
        Ok(Self {
            name: spec.name.clone(),
            json_equals,
            header_equals,
            status,
            content_type,
            body,
        })
    }

    /// Whether the request is this handshake.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let json_ok = self.json_equals.iter().all(|(pointer, want)| {
            req.json
                .and_then(|j| j.pointer(pointer))
                .and_then(|v| v.as_str())
                == Some(want.as_str())
        });
        let headers_ok = self.header_equals.iter().all(|(name, want)| {
            req.headers
                .get(name)
                .is_some_and(|v| v.as_bytes() == want.as_bytes())
        });
        json_ok && headers_ok
    }

    /// The answer for this request.
    pub fn reply(&self, req: &RequestView<'_>) -> HandshakeReply {
        let body = match &self.body {
            BodySource::Literal(bytes) => bytes.clone(),
            BodySource::Field(field) => match field.get(req) {
                Some(Cow::Borrowed(s)) => Bytes::copy_from_slice(s.as_bytes()),
                Some(Cow::Owned(s)) => Bytes::from(s),
                None => Bytes::new(),
            },
        };
        HandshakeReply {
            status: self.status,
            content_type: self.content_type.clone(),
            body,
        }
    }
}

fn compile_respond(
    spec: &RespondSpec,
) -> Result<(StatusCode, HeaderValue, BodySource), (String, String)> {
    let status = StatusCode::from_u16(spec.status).map_err(|_| {
        (
            "respond.status".to_owned(),
            format!("{} is not an HTTP status", spec.status),
        )
    })?;
    let content_type = HeaderValue::from_str(&spec.content_type).map_err(|_| {
        (
            "respond.content_type".to_owned(),
            "is not a valid header value".to_owned(),
        )
    })?;
    let body = match spec.body.strip_prefix("literal:") {
        Some(text) => BodySource::Literal(Bytes::copy_from_slice(text.as_bytes())),
        None => BodySource::Field(
            Field::parse(&spec.body)
                .map_err(|e| ("respond.body".to_owned(), format!("{e}, or `literal:TEXT`")))?,
        ),
    };
    Ok((status, content_type, body))
}
