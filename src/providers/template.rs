//! Signed-content templates: `v0:{header.X-Slack-Request-Timestamp}:{body}`, `{sig.t}.{body}`.
//! Compiled once; at request time they resolve to borrowed slices fed to the MAC in order, so the
//! body is never copied.

use http::{HeaderMap, HeaderName};

use super::field::header_name;

/// One piece of signed content.
#[derive(Debug, Clone)]
enum Part {
    Literal(Vec<u8>),
    Body,
    Header(HeaderName),
    Sig(String),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

/// A part the request lacks; the verifier reports it as a missing signature input.
#[derive(Debug, PartialEq, Eq)]
pub struct MissingPart(pub String);

impl Template {
    /// Compiles `text`. `sig_params` are the names `{sig.NAME}` may use (from a `kv` signature).
    pub fn parse(text: &str, sig_params_allowed: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            push_literal(&mut parts, &rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in signed_content `{text}`"))?;
            let var = &rest[open + 1..open + close];
            parts.push(parse_variable(var, sig_params_allowed)?);
            rest = &rest[open + close + 1..];
        }
        push_literal(&mut parts, rest);
        if !parts.iter().any(|p| matches!(p, Part::Body)) {
            return Err(format!(
                "signed_content `{text}` does not include `{{body}}`: the body would go unauthenticated"
            ));
        }
        Ok(Self(parts))
    }

    /// The headers this template reads.
    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.0.iter().filter_map(|p| match p {
            Part::Header(h) => Some(h),
            _ => None,
        })
    }

    /// The slices to sign, in order.
    pub fn resolve<'a>(
        &'a self,
        headers: &'a HeaderMap,
        body: &'a [u8],
        params: &'a [(String, String)],
    ) -> Result<Vec<&'a [u8]>, MissingPart> {
        self.0
            .iter()
            .map(|part| match part {
                Part::Literal(bytes) => Ok(bytes.as_slice()),
                Part::Body => Ok(body),
                Part::Header(name) => headers
                    .get(name)
                    .map(|v| v.as_bytes())
                    .ok_or_else(|| MissingPart(format!("header {name}"))),
                Part::Sig(name) => params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_bytes())
                    .ok_or_else(|| MissingPart(format!("signature parameter {name}"))),
            })
            .collect()
    }
}

fn push_literal(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Literal(text.as_bytes().to_vec()));
    }
}

fn parse_variable(var: &str, sig_params_allowed: bool) -> Result<Part, String> {
    if var == "body" {
        return Ok(Part::Body);
    }
    if let Some(name) = var.strip_prefix("header.") {
        return header_name(name).map(Part::Header);
    }
    if let Some(name) = var.strip_prefix("sig.") {
        if !sig_params_allowed {
            return Err(format!(
                "`{{{var}}}` needs a signature header with parameters (`format: kv`)"
            ));
        }
        return Ok(Part::Sig(name.to_owned()));
    }
    Err(format!(
        "unknown template variable `{{{var}}}`: use {{body}}, {{header.NAME}} or {{sig.NAME}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(parts: Vec<&[u8]>) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn resolves_literals_headers_params_and_body() {
        let t = Template::parse("v0:{header.X-Ts}:{sig.t}.{body}", true).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-ts", "123".parse().unwrap());
        let params = vec![("t".to_owned(), "9".to_owned())];
        let parts = t.resolve(&headers, b"BODY", &params).unwrap();
        assert_eq!(concat(parts), b"v0:123:9.BODY");
    }

    #[test]
    fn missing_header_is_reported() {
        let t = Template::parse("{header.X-Ts}{body}", false).unwrap();
        let err = t.resolve(&HeaderMap::new(), b"", &[]).unwrap_err();
        assert_eq!(err, MissingPart("header x-ts".into()));
    }

    #[test]
    fn rejects_unknown_variables_and_unsigned_bodies() {
        assert!(
            Template::parse("{bdy}", false)
                .unwrap_err()
                .contains("unknown template variable `{bdy}`")
        );
        assert!(
            Template::parse("{sig.t}{body}", false)
                .unwrap_err()
                .contains("format: kv")
        );
        assert!(
            Template::parse("{header.X}", false)
                .unwrap_err()
                .contains("does not include `{body}`")
        );
        assert!(
            Template::parse("{body", false)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
