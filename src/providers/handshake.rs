//! Provider handshakes (Slack `url_verification`, Meta `hub.challenge`, Zoom, Twitch, Asana,
//! ...): a request matcher and the exact answer the provider expects. Handshakes are never
//! published. Also the provider-defined answer to accepted events (Adyen's `[accepted]`).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::request::RequestView;
use super::spec::{HandshakeSpec, MatchSpec, RespondSpec};
use super::value::{Value, header_name, json_pointer};

/// A compiled handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Name for logs and metrics.
    pub name: String,
    /// Answered before signature verification.
    pub before_verify: bool,
    matcher: Matcher,
    verify_token: Option<Value>,
    capture: Option<Value>,
    confirm: Option<(Value, regex::Regex)>,
    respond: Respond,
}

#[derive(Debug, Clone, Default)]
struct Matcher {
    method: Option<Method>,
    query_present: Vec<String>,
    query_equals: Vec<(String, String)>,
    header_present: Vec<HeaderName>,
    header_equals: Vec<(HeaderName, String)>,
    json_equals: Vec<(String, serde_json::Value)>,
    json_present: Vec<String>,
}

/// A compiled answer.
#[derive(Debug, Clone)]
pub struct Respond {
    status: StatusCode,
    content_type: HeaderValue,
    body: BodySource,
    headers: Vec<(HeaderName, Value)>,
}

#[derive(Debug, Clone)]
enum BodySource {
    Empty,
    Value(Value),
    JsonObject(Vec<(String, Value)>),
}

/// A response hookgate gives itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers, `Content-Type` first.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body bytes.
    pub body: Bytes,
}

impl Handshake {
    /// Compiles the spec; the error names the field.
    pub fn from_spec(spec: &HandshakeSpec) -> Result<Self, (String, String)> {
        let field = |f: &str| format!("handshakes.{}.{f}", spec.name);
        let matcher = Matcher::from_spec(&spec.matcher).map_err(|(f, e)| (field(&f), e))?;
        let value = |f: &str, v: &Option<String>| v.as_deref().map(Value::parse).transpose().map_err(|e| (field(f), e));
        Ok(Self {
            name: spec.name.clone(),
            before_verify: spec.before_verify,
            verify_token: value("check_verify_token", &spec.check_verify_token)?,
            capture: value("capture_secret", &spec.capture_secret)?,
            confirm: spec
                .confirm
                .as_ref()
                .map(|c| {
                    let url = Value::parse(&c.get).map_err(|e| (field("confirm.get"), e))?;
                    let pattern = regex::Regex::new(&c.url_must_match)
                        .map_err(|e| (field("confirm.url_must_match"), e.to_string()))?;
                    Ok::<_, (String, String)>((url, pattern))
                })
                .transpose()?,
            respond: Respond::from_spec(&spec.respond).map_err(|(f, e)| (field(&f), e))?,
            matcher,
        })
    }

    /// Whether the request is this handshake.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.matcher.matches(req)
    }

    /// Whether the handshake requires the source's `verify_token`.
    pub fn needs_verify_token(&self) -> bool {
        self.verify_token.is_some()
    }

    /// Whether this handshake hands over a secret.
    pub fn captures_secret(&self) -> bool {
        self.capture.is_some()
    }

    /// `true` when no token is required, or the request's equals `configured` (constant time).
    pub fn verify_token_ok(&self, req: &RequestView<'_>, configured: Option<&str>) -> bool {
        let Some(value) = &self.verify_token else {
            return true;
        };
        match (value.get(req, None), configured) {
            (Some(presented), Some(configured)) => {
                use sha2::{Digest, Sha256};
                use subtle::ConstantTimeEq;
                bool::from(Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(configured.as_bytes())))
            }
            _ => false,
        }
    }

    /// The secret the provider hands over in this request, if this handshake captures one.
    pub fn captured_secret<'a>(&self, req: &RequestView<'a>) -> Option<Cow<'a, str>> {
        self.capture.as_ref()?.get(req, None).filter(|s| !s.is_empty())
    }

    /// The URL to GET to confirm a subscription, if this handshake confirms one: `Err` when the
    /// request names a URL off the pinned pattern (it is then never fetched).
    pub fn confirm_url(&self, req: &RequestView<'_>) -> Option<Result<String, String>> {
        let (value, pattern) = self.confirm.as_ref()?;
        let url = value.get(req, None).unwrap_or_default().into_owned();
        Some(if pattern.is_match(&url) { Ok(url) } else { Err(url) })
    }

    /// The answer; `key` is the source's first shared secret (for `hmac_sha256_hex`).
    pub fn reply(&self, req: &RequestView<'_>, key: Option<&[u8]>) -> Reply {
        self.respond.reply(req, key)
    }
}

impl Matcher {
    fn from_spec(spec: &MatchSpec) -> Result<Self, (String, String)> {
        fn err(f: &'static str) -> impl Fn(String) -> (String, String) {
            move |e| (format!("match.{f}"), e)
        }
        let method = spec
            .method
            .as_deref()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("`{m}` is not an HTTP method"))
            })
            .transpose()
            .map_err(err("method"))?;
        let header_present = spec
            .header_present
            .iter()
            .map(|h| header_name(h))
            .collect::<Result<_, _>>()
            .map_err(err("header_present"))?;
        let header_equals = spec
            .header_equals
            .iter()
            .map(|(h, v)| header_name(h).map(|h| (h, v.clone())))
            .collect::<Result<_, _>>()
            .map_err(err("header_equals"))?;
        let json_equals = spec
            .json_equals
            .iter()
            .map(|(p, v)| json_pointer(p).map(|p| (p.to_owned(), v.clone())))
            .collect::<Result<_, _>>()
            .map_err(err("json_equals"))?;
        let json_present = spec
            .json_present
            .iter()
            .map(|p| json_pointer(p).map(str::to_owned))
            .collect::<Result<_, _>>()
            .map_err(err("json_present"))?;
        let matcher = Self {
            method,
            query_present: spec.query_present.clone(),
            query_equals: spec.query_equals.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            header_present,
            header_equals,
            json_equals,
            json_present,
        };
        if matcher.is_empty() {
            return Err(("match".into(), "needs at least one condition".into()));
        }
        Ok(matcher)
    }

    fn is_empty(&self) -> bool {
        self.method.is_none()
            && self.query_present.is_empty()
            && self.query_equals.is_empty()
            && self.header_present.is_empty()
            && self.header_equals.is_empty()
            && self.json_equals.is_empty()
            && self.json_present.is_empty()
    }

    fn matches(&self, req: &RequestView<'_>) -> bool {
        self.method.as_ref().is_none_or(|m| m == req.method)
            && self.query_present.iter().all(|q| req.query_param(q).is_some())
            && self.query_equals.iter().all(|(q, v)| req.query_param(q).as_deref() == Some(v.as_str()))
            && self.header_present.iter().all(|h| req.headers.contains_key(h))
            && self.header_equals.iter().all(|(h, v)| req.headers.get(h).is_some_and(|x| x.as_bytes() == v.as_bytes()))
            && self.json_equals.iter().all(|(p, v)| req.json.and_then(|j| j.pointer(p)) == Some(v))
            && self.json_present.iter().all(|p| req.json.and_then(|j| j.pointer(p)).is_some())
    }
}

impl Respond {
    /// Compiles an answer; errors are `(field, message)`.
    pub fn from_spec(spec: &RespondSpec) -> Result<Self, (String, String)> {
        let status = StatusCode::from_u16(spec.status)
            .map_err(|_| ("respond.status".to_owned(), format!("{} is not an HTTP status", spec.status)))?;
        let content_type = HeaderValue::from_str(&spec.content_type)
            .map_err(|_| ("respond.content_type".to_owned(), "is not a valid header value".to_owned()))?;
        let value = |f: &str, v: &str| Value::parse(v).map_err(|e| (format!("respond.{f}"), e));
        let body = match (&spec.body, &spec.json_object) {
            (Some(_), Some(_)) => {
                return Err(("respond".into(), "give `body` or `json_object`, not both".into()));
            }
            (Some(b), None) => BodySource::Value(value("body", b)?),
            (None, Some(object)) => BodySource::JsonObject(
                object
                    .iter()
                    .map(|(k, v)| value("json_object", v).map(|v| (k.clone(), v)))
                    .collect::<Result<_, _>>()?,
            ),
            (None, None) => BodySource::Empty,
        };
        let headers = spec
            .headers
            .iter()
            .map(|(h, v)| Ok((header_name(h).map_err(|e| ("respond.headers".to_owned(), e))?, value("headers", v)?)))
            .collect::<Result<_, (String, String)>>()?;
        Ok(Self { status, content_type, body, headers })
    }

    /// The answer for this request.
    pub fn reply(&self, req: &RequestView<'_>, key: Option<&[u8]>) -> Reply {
        let body = match &self.body {
            BodySource::Empty => Bytes::new(),
            BodySource::Value(v) => v.get(req, key).map(|s| Bytes::from(s.into_owned())).unwrap_or_default(),
            BodySource::JsonObject(fields) => {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| {
                        (k.clone(), serde_json::Value::from(v.get(req, key).map(Cow::into_owned).unwrap_or_default()))
                    })
                    .collect();
                Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
            }
        };
        let mut headers = vec![(http::header::CONTENT_TYPE, self.content_type.clone())];
        for (name, value) in &self.headers {
            if let Some(v) = value.get(req, key).and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.push((name.clone(), v));
            }
        }
        Reply { status: self.status, headers, body }
    }
}
