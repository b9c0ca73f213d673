//! Finding and decoding signatures in a header: plain (`sha256=<hex>`), key-value
//! (`t=1,v1=a,v1=b`) and version lists (`v1,a v1,b`). Decoding is strict: a non-canonical
//! base64 or a stray character is a mismatch, never "close enough".

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderName;

use super::VerifyError;
use super::request::RequestView;
use super::spec::{Encoding, SignatureFormatKind, SignatureSpec};
use super::value::{header_name, json_pointer};

/// Signatures found in a request, with the other parameters of the header.
#[derive(Debug, Default)]
pub struct Signatures {
    /// Decoded candidate signatures; a match with any of them verifies.
    pub candidates: Vec<Vec<u8>>,
    /// Non-signature `key=value` parameters (`kv` format), for `{sig.NAME}`.
    pub params: Vec<(String, String)>,
}

/// Where a signature (or token) is carried.
#[derive(Debug, Clone)]
pub enum Location {
    /// A header; repeated headers give several values.
    Header(HeaderName),
    /// A string in the JSON body.
    Json(String),
    /// A query parameter.
    Query(String),
}

impl Location {
    /// Exactly one of `header`, `json`, `query`.
    pub fn from_parts(header: Option<&str>, json: Option<&str>, query: Option<&str>) -> Result<Self, String> {
        match (header, json, query) {
            (Some(h), None, None) => header_name(h).map(Location::Header),
            (None, Some(p), None) => json_pointer(p).map(|p| Location::Json(p.to_owned())),
            (None, None, Some(q)) => Ok(Location::Query(q.to_owned())),
            _ => Err("give exactly one of `header`, `json` or `query`".to_owned()),
        }
    }

    /// Every value at this location, as text.
    pub fn values<'a>(&self, req: &RequestView<'a>) -> Vec<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            Location::Header(name) => {
                req.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(Cow::Borrowed).collect()
            }
            Location::Json(pointer) => req
                .json
                .and_then(|j| j.pointer(pointer))
                .and_then(|v| v.as_str())
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
            Location::Query(name) => req.query_param(name).into_iter().collect(),
        }
    }

    /// The header, when the location is one.
    pub fn header(&self) -> Option<&HeaderName> {
        match self {
            Location::Header(h) => Some(h),
            _ => None,
        }
    }

    /// Whether reading it needs the parsed JSON body.
    pub fn needs_json(&self) -> bool {
        matches!(self, Location::Json(_))
    }
}

/// A compiled signature location and syntax.
#[derive(Debug, Clone)]
pub struct SignatureFormat {
    location: Location,
    syntax: Syntax,
    encoding: Encoding,
}

#[derive(Debug, Clone)]
enum Syntax {
    Plain { prefix: String, optional: bool },
    Kv { pair_sep: String, kv_sep: String, sig_keys: Vec<String>, group_sep: Option<String> },
    List { sep: String, version_sep: String, versions: Vec<String> },
    Positional { sep: String, params: Vec<String> },
}

impl SignatureFormat {
    /// Compiles the spec.
    pub fn from_spec(spec: &SignatureSpec) -> Result<Self, String> {
        let location = Location::from_parts(spec.header.as_deref(), spec.json.as_deref(), spec.query.as_deref())?;
        let syntax = match spec.format {
            SignatureFormatKind::Plain => Syntax::Plain { prefix: spec.prefix.clone(), optional: spec.prefix_optional },
            SignatureFormatKind::Kv => {
                non_empty("sig_keys", &spec.sig_keys)?;
                Syntax::Kv {
                    pair_sep: spec.pair_sep.clone(),
                    kv_sep: spec.kv_sep.clone(),
                    sig_keys: spec.sig_keys.clone(),
                    group_sep: spec.group_sep.clone().filter(|s| !s.is_empty()),
                }
            }
            SignatureFormatKind::List => {
                non_empty("versions", &spec.versions)?;
                Syntax::List {
                    sep: spec.sep.clone(),
                    version_sep: spec.version_sep.clone(),
                    versions: spec.versions.clone(),
                }
            }
            SignatureFormatKind::Positional => {
                // `sep` defaults to a space for lists; positional headers are comma-separated.
                let sep = if spec.sep == " " { ",".to_owned() } else { spec.sep.clone() };
                Syntax::Positional { sep, params: spec.params.clone() }
            }
        };
        Ok(Self { location, syntax, encoding: spec.encoding })
    }

    /// Whether `{sig.NAME}` parameters exist in this format.
    pub fn has_params(&self) -> bool {
        matches!(self.syntax, Syntax::Kv { .. } | Syntax::Positional { .. })
    }

    /// Where the signature is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Extracts the signatures. Absent is `SignatureMissing`; present with no well-formed
    /// signature of an accepted version is `SignatureInvalid`.
    pub fn parse(&self, req: &RequestView<'_>) -> Result<Signatures, VerifyError> {
        self.parse_groups(req).map(|mut groups| groups.swap_remove(0))
    }

    /// As [`SignatureFormat::parse`], one entry per group for a `kv` format with `group_sep`
    /// (each group has its own parameters); a single group otherwise.
    pub fn parse_groups(&self, req: &RequestView<'_>) -> Result<Vec<Signatures>, VerifyError> {
        let values = self.location.values(req);
        if values.is_empty() {
            return Err(VerifyError::SignatureMissing);
        }
        let mut groups = Vec::new();
        match &self.syntax {
            Syntax::Kv { group_sep: Some(sep), .. } => {
                for group in values.iter().flat_map(|v| v.split(sep.as_str())).filter(|g| !g.trim().is_empty()) {
                    let mut found = Signatures::default();
                    self.parse_value(group, &mut found);
                    groups.push(found);
                }
            }
            _ => {
                let mut found = Signatures::default();
                for text in &values {
                    self.parse_value(text, &mut found);
                }
                groups.push(found);
            }
        }
        groups.retain(|g| !g.candidates.is_empty());
        if groups.is_empty() {
            return Err(VerifyError::SignatureInvalid);
        }
        Ok(groups)
    }

    /// The text a sender puts at the signature location for signature `bytes` and the other
    /// `params` (a `kv` header's `t=…`).
    pub fn render(&self, bytes: &[u8], params: &[(String, String)]) -> String {
        let encoded = encode(self.encoding, bytes);
        match &self.syntax {
            Syntax::Plain { prefix, .. } => format!("{prefix}{encoded}"),
            Syntax::Kv { pair_sep, kv_sep, sig_keys, .. } => params
                .iter()
                .map(|(k, v)| format!("{k}{kv_sep}{v}"))
                .chain([format!("{}{kv_sep}{encoded}", sig_keys[0])])
                .collect::<Vec<_>>()
                .join(pair_sep),
            Syntax::List { version_sep, versions, .. } => format!("{}{version_sep}{encoded}", versions[0]),
            Syntax::Positional { sep, params: names } => names
                .iter()
                .map(|n| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default())
                .chain([encoded])
                .collect::<Vec<_>>()
                .join(sep),
        }
    }

    fn parse_value(&self, text: &str, found: &mut Signatures) {
        match &self.syntax {
            Syntax::Plain { prefix, optional } => {
                let text = text.trim();
                match text.strip_prefix(prefix.as_str()) {
                    Some(sig) => self.push_decoded(sig, found),
                    None if *optional => self.push_decoded(text, found),
                    None => {}
                }
            }
            Syntax::Kv { pair_sep, kv_sep, sig_keys, .. } => {
                for pair in text.split(pair_sep.as_str()) {
                    let Some((key, value)) = pair.split_once(kv_sep.as_str()) else {
                        continue;
                    };
                    let (key, value) = (key.trim(), value.trim());
                    if sig_keys.iter().any(|k| k == key) {
                        self.push_decoded(value, found);
                    } else {
                        found.params.push((key.to_owned(), value.to_owned()));
                    }
                }
            }
            Syntax::Positional { sep, params } => {
                let mut values = text.split(sep.as_str()).map(str::trim);
                for name in params {
                    if let Some(value) = values.next() {
                        found.params.push((name.clone(), value.to_owned()));
                    }
                }
                for sig in values {
                    self.push_decoded(sig, found);
                }
            }
            Syntax::List { sep, version_sep, versions } => {
                for entry in text.split(sep.as_str()).filter(|e| !e.is_empty()) {
                    let Some((version, sig)) = entry.split_once(version_sep.as_str()) else {
                        continue;
                    };
                    if versions.iter().any(|v| v == version) {
                        self.push_decoded(sig, found);
                    }
                }
            }
        }
    }

    fn push_decoded(&self, text: &str, found: &mut Signatures) {
        if let Some(bytes) = decode(self.encoding, text) {
            found.candidates.push(bytes);
        }
    }
}

/// Encodes signature bytes.
pub fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => STANDARD.encode(bytes),
        Encoding::Base64url => URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// Strict decoding: `None` for anything that is not the canonical encoding of some bytes.
pub fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => STANDARD.decode(text).ok(),
        Encoding::Base64url => URL_SAFE_NO_PAD.decode(text).ok(),
    }
}

fn non_empty(field: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() { Err(format!("`{field}` must name at least one entry")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn spec(format: SignatureFormatKind, encoding: Encoding) -> SignatureSpec {
        let yaml = format!("{{ format: {format:?}, header: Sig, encoding: {encoding:?} }}").to_lowercase();
        serde_yaml_ng::from_str(&yaml).unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("sig", v.parse().unwrap());
        }
        map
    }

    fn parse(format: &SignatureFormat, values: &[&str]) -> Result<Signatures, VerifyError> {
        let h = headers(values);
        format.parse(&RequestView::post(&h, b""))
    }

    #[test]
    fn kv_collects_every_signature_and_keeps_other_params() {
        let mut s = spec(SignatureFormatKind::Kv, Encoding::Hex);
        s.sig_keys = vec!["v1".into()];
        let sigs = parse(&SignatureFormat::from_spec(&s).unwrap(), &["t=12,v1=aa,v0=bb,v1=CC"]).unwrap();
        assert_eq!(sigs.candidates, vec![vec![0xaa], vec![0xcc]]);
        assert_eq!(sigs.params, vec![("t".into(), "12".into()), ("v0".into(), "bb".into())]);
    }

    #[test]
    fn list_ignores_unknown_versions() {
        let mut s = spec(SignatureFormatKind::List, Encoding::Base64);
        s.versions = vec!["v1".into()];
        let sigs = parse(&SignatureFormat::from_spec(&s).unwrap(), &["v1a,AAAA v1,AQ== v2,Ag=="]).unwrap();
        assert_eq!(sigs.candidates, vec![vec![1]]);
    }

    #[test]
    fn plain_requires_the_prefix_unless_optional() {
        let mut s = spec(SignatureFormatKind::Plain, Encoding::Hex);
        s.prefix = "sha256=".into();
        let strict = SignatureFormat::from_spec(&s).unwrap();
        assert!(matches!(parse(&strict, &["0a"]), Err(VerifyError::SignatureInvalid)));
        assert_eq!(parse(&strict, &["sha256=0a", "sha256=0b"]).unwrap().candidates.len(), 2);
        assert!(matches!(parse(&strict, &[]), Err(VerifyError::SignatureMissing)));
        s.prefix_optional = true;
        let lenient = SignatureFormat::from_spec(&s).unwrap();
        assert_eq!(parse(&lenient, &["0a"]).unwrap().candidates, vec![vec![0x0a]]);
    }

    #[test]
    fn signatures_can_live_in_the_json_body() {
        let mut s = spec(SignatureFormatKind::Plain, Encoding::Hex);
        s.header = None;
        s.json = Some("/signature/signature".into());
        let format = SignatureFormat::from_spec(&s).unwrap();
        let json = serde_json::json!({"signature": {"signature": "0a0b"}});
        let h = HeaderMap::new();
        let sigs = format.parse(&RequestView::post(&h, b"").with_json(Some(&json))).unwrap();
        assert_eq!(sigs.candidates, vec![vec![0x0a, 0x0b]]);
        s.query = Some("sig".into());
        assert!(SignatureFormat::from_spec(&s).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode(Encoding::Base64, "AQ=="), Some(vec![1]));
        // Same bytes, but the unused low bits of the last character are set: not canonical.
        assert_eq!(decode(Encoding::Base64, "AR=="), None);
        assert_eq!(decode(Encoding::Base64, "AQ"), None);
        assert_eq!(decode(Encoding::Hex, "0g"), None);
        assert_eq!(decode(Encoding::Hex, "AbCd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode(Encoding::Base64url, "_w"), Some(vec![0xff]));
    }
}
