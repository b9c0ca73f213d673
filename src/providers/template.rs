//! Signed-content templates: `v0:{header.X-Slack-Request-Timestamp}:{body}`, `{sig.t}.{body}`,
//! `{url}{body}`. Compiled once; at request time they resolve to slices fed to the MAC in order,
//! borrowed where possible, so the body is never copied.

use std::borrow::Cow;

use http::HeaderName;
use sha2::{Digest, Sha256};

use super::request::RequestView;
use super::value::{header_name, json_pointer, scalar_text};

/// One piece of signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Body,
    Method,
    Url,
    Header(HeaderName),
    Sig(String),
    Query(String),
    Json(String),
    BodySha256Hex,
    Secret,
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

/// A part the request lacks; verification reports it as a missing signature input.
#[derive(Debug, PartialEq, Eq)]
pub struct MissingPart(pub String);

/// Which placeholders a scheme allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    /// `{sig.NAME}`: the signature header has parameters (`format: kv`).
    pub sig_params: bool,
    /// `{secret}`: the scheme is a plain hash that includes the secret.
    pub secret: bool,
}

impl Template {
    /// Compiles `text`.
    pub fn parse(text: &str, allowed: Allowed) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            push_literal(&mut parts, &rest[..open]);
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed `{{` in signed_content `{text}`"))?;
            parts.push(parse_variable(&rest[open + 1..open + close], allowed)?);
            rest = &rest[open + close + 1..];
        }
        push_literal(&mut parts, rest);
        // Some providers sign selected body fields rather than the whole body (Adyen, Mailgun);
        // content that covers neither would authenticate nothing the consumer reads.
        let covers_body = parts.iter().any(|p| matches!(p, Part::Body | Part::BodySha256Hex | Part::Json(_)));
        if !covers_body {
            return Err(format!(
                "signed_content `{text}` includes neither `{{body}}`, `{{body_sha256_hex}}` nor a `{{json:/pointer}}` field: the body would go unauthenticated"
            ));
        }
        if allowed.secret && !parts.contains(&Part::Secret) {
            return Err(format!("signed_content `{text}` of a `hash` scheme must include `{{secret}}`"));
        }
        Ok(Self(parts))
    }

    /// Headers this template reads.
    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.0.iter().filter_map(|p| match p {
            Part::Header(h) => Some(h),
            _ => None,
        })
    }

    /// Whether the template signs the source's public URL.
    pub fn needs_url(&self) -> bool {
        self.0.contains(&Part::Url)
    }

    /// Whether the template reads the JSON body.
    pub fn needs_json(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Json(_)))
    }

    /// The slices to sign, in order; `secret` fills `{secret}`.
    pub fn resolve<'a>(
        &'a self,
        req: &RequestView<'a>,
        params: &'a [(String, String)],
        secret: Option<&'a [u8]>,
    ) -> Result<Vec<Cow<'a, [u8]>>, MissingPart> {
        self.0.iter().map(|part| resolve_part(part, req, params, secret)).collect()
    }
}

fn resolve_part<'a>(
    part: &'a Part,
    req: &RequestView<'a>,
    params: &'a [(String, String)],
    secret: Option<&'a [u8]>,
) -> Result<Cow<'a, [u8]>, MissingPart> {
    let missing = |what: String| MissingPart(what);
    Ok(match part {
        Part::Literal(bytes) => Cow::Borrowed(bytes.as_slice()),
        Part::Body => Cow::Borrowed(req.body),
        Part::Method => Cow::Borrowed(req.method.as_str().as_bytes()),
        Part::Url => match req.signed_url().ok_or_else(|| missing("public_url".into()))? {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
        Part::Header(name) => {
            Cow::Borrowed(req.headers.get(name).ok_or_else(|| missing(format!("header {name}")))?.as_bytes())
        }
        Part::Sig(name) => Cow::Borrowed(
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes())
                .ok_or_else(|| missing(format!("signature parameter {name}")))?,
        ),
        Part::Query(name) => Cow::Borrowed(
            req.query_param_raw(name).ok_or_else(|| missing(format!("query parameter {name}")))?.as_bytes(),
        ),
        Part::Json(pointer) => {
            let value = req.json.and_then(|j| j.pointer(pointer)).and_then(scalar_text);
            match value {
                Some(Cow::Borrowed(s)) => Cow::Borrowed(s.as_bytes()),
                Some(Cow::Owned(s)) => Cow::Owned(s.into_bytes()),
                // Absent fields sign as empty (Adyen's optional fields, Mailgun's token).
                None => Cow::Borrowed(&[][..]),
            }
        }
        Part::BodySha256Hex => Cow::Owned(hex::encode(Sha256::digest(req.body)).into_bytes()),
        Part::Secret => Cow::Borrowed(secret.ok_or_else(|| missing("secret".into()))?),
    })
}

fn push_literal(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Literal(text.as_bytes().to_vec()));
    }
}

fn parse_variable(var: &str, allowed: Allowed) -> Result<Part, String> {
    match var {
        "body" => return Ok(Part::Body),
        "method" => return Ok(Part::Method),
        "url" => return Ok(Part::Url),
        "body_sha256_hex" => return Ok(Part::BodySha256Hex),
        "secret" if allowed.secret => return Ok(Part::Secret),
        "secret" => return Err("`{secret}` is only allowed in `type: hash` schemes".to_owned()),
        _ => {}
    }
    if let Some(name) = var.strip_prefix("header.") {
        return header_name(name).map(Part::Header);
    }
    if let Some(pointer) = var.strip_prefix("json:") {
        return json_pointer(pointer).map(|p| Part::Json(p.to_owned()));
    }
    if let Some(name) = var.strip_prefix("query.") {
        return Ok(Part::Query(name.to_owned()));
    }
    if let Some(name) = var.strip_prefix("sig.") {
        if !allowed.sig_params {
            return Err(format!("`{{{var}}}` needs a signature header with parameters (`format: kv`)"));
        }
        return Ok(Part::Sig(name.to_owned()));
    }
    Err(format!(
        "unknown template variable `{{{var}}}`: use {{body}}, {{method}}, {{url}}, {{header.NAME}}, {{sig.NAME}}, {{query.NAME}}, {{json:/pointer}}, {{body_sha256_hex}} or {{secret}}"
    ))
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::*;

    fn concat(parts: Vec<Cow<'_, [u8]>>) -> Vec<u8> {
        parts.concat()
    }

    const KV: Allowed = Allowed { sig_params: true, secret: false };

    #[test]
    fn resolves_every_placeholder() {
        let t =
            Template::parse("{method}|{url}|{header.X-Ts}|{sig.t}|{query.a}|{json:/n}|{body}|{body_sha256_hex}", KV)
                .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-ts", "123".parse().unwrap());
        let json = serde_json::json!({"n": 5});
        let req = RequestView {
            method: &Method::PUT,
            headers: &headers,
            query: Some("a=%2F&b=2"),
            public_url: Some("https://h.example/hooks/x"),
            body: b"abc",
            json: Some(&json),
        };
        let params = vec![("t".to_owned(), "9".to_owned())];
        let signed = concat(t.resolve(&req, &params, None).unwrap());
        assert_eq!(
            String::from_utf8(signed).unwrap(),
            "PUT|https://h.example/hooks/x?a=%2F&b=2|123|9|%2F|5|abc|ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_inputs_are_reported() {
        let t = Template::parse("{header.X-Ts}{body}", KV).unwrap();
        let headers = HeaderMap::new();
        let err = t.resolve(&RequestView::post(&headers, b""), &[], None).unwrap_err();
        assert_eq!(err, MissingPart("header x-ts".into()));
        let t = Template::parse("{url}{body}", KV).unwrap();
        assert!(t.resolve(&RequestView::post(&headers, b""), &[], None).is_err());
    }

    #[test]
    fn rejects_unknown_variables_and_unsigned_bodies() {
        let none = Allowed::default();
        assert!(Template::parse("{bdy}", none).unwrap_err().contains("unknown template variable `{bdy}`"));
        assert!(Template::parse("{sig.t}{body}", none).unwrap_err().contains("format: kv"));
        assert!(Template::parse("{header.X}", none).unwrap_err().contains("includes neither `{body}`"));
        assert!(Template::parse("{body", none).unwrap_err().contains("unclosed"));
        assert!(Template::parse("{secret}{body}", none).unwrap_err().contains("only allowed in `type: hash`"));
        let hash = Allowed { sig_params: false, secret: true };
        assert!(Template::parse("{body}", hash).unwrap_err().contains("must include `{secret}`"));
    }
}
