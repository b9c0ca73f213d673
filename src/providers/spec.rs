//! The shape of `providers/*.yaml`: declarative verification, identity and handshakes.
//! Plain data; [`super::Provider::from_spec`] checks it and compiles it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::units::HumanDuration;

/// One provider file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Link to the provider's documentation of its signature scheme.
    #[serde(default)]
    pub docs: Option<String>,
    /// How requests are authenticated.
    pub verify: VerifySpec,
    /// Where the event id is, first match wins; none found → digest of the request.
    #[serde(default)]
    pub id: OneOrMany,
    /// Where the event type is, first match wins; none found → `unknown`.
    #[serde(default)]
    pub event_type: OneOrMany,
    /// Requests answered by hookgate itself and never published.
    #[serde(default)]
    pub handshakes: Vec<HandshakeSpec>,
}

/// A single string or a list of strings.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// Nothing given.
    #[default]
    None,
    /// One entry.
    One(String),
    /// Several entries, tried in order.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The entries in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Verification schemes, selected by `type:`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifySpec {
    /// An HMAC over a template of request parts.
    Hmac(HmacSpec),
}

/// HMAC verification.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSpec {
    /// Hash function of the HMAC.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How a configured secret becomes key bytes.
    #[serde(default)]
    pub key: KeySpec,
    /// Where the signature is and how to parse it.
    pub signature: SignatureSpec,
    /// The signed bytes: `{body}`, `{header.NAME}`, `{sig.NAME}` and literal text.
    pub signed_content: String,
    /// Replay window, for schemes that sign a timestamp.
    #[serde(default)]
    pub timestamp: Option<TimestampSpec>,
}

/// Hash functions for HMAC.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    #[default]
    Sha256,
    /// HMAC-SHA1 (legacy providers).
    Sha1,
    /// HMAC-SHA512.
    Sha512,
}

/// Secret decoding.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// How the text (after prefix stripping) becomes bytes.
    #[serde(default)]
    pub decode: KeyDecode,
    /// Prefixes removed before decoding, first match only (e.g. `whsec_`).
    #[serde(default)]
    pub strip_prefix: Vec<String>,
}

/// Key text encodings.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyDecode {
    /// The secret's UTF-8 bytes, verbatim.
    #[default]
    Utf8,
    /// Hex-decoded.
    Hex,
    /// Standard base64.
    Base64,
    /// URL-safe base64 without padding.
    Base64url,
}

/// Binary-to-text encodings of signatures.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Hex, either case.
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// URL-safe base64 without padding.
    Base64url,
}

/// Signature location and syntax, selected by `format:`.
#[derive(Debug, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureSpec {
    /// One value, optionally behind a prefix: `sha256=<hex>`.
    Plain {
        /// Header carrying the signature.
        header: String,
        /// Required prefix, e.g. `sha256=`.
        #[serde(default)]
        prefix: String,
        /// Signature encoding.
        encoding: Encoding,
    },
    /// `key=value` pairs: `t=123,v1=abc,v1=def`.
    Kv {
        /// Header carrying the signature.
        header: String,
        /// Separator between pairs.
        #[serde(default = "comma")]
        pair_sep: String,
        /// Separator between key and value.
        #[serde(default = "equals")]
        kv_sep: String,
        /// Keys whose values are signatures; the others become `{sig.NAME}` parameters.
        sig_keys: Vec<String>,
        /// Signature encoding.
        encoding: Encoding,
    },
    /// A list of `version,signature` entries: `v1,abc v1,def`.
    List {
        /// Header carrying the signatures.
        header: String,
        /// Separator between entries.
        #[serde(default = "space")]
        sep: String,
        /// Separator between version and signature.
        #[serde(default = "comma")]
        version_sep: String,
        /// Versions this scheme verifies; entries with other versions are ignored.
        versions: Vec<String>,
        /// Signature encoding.
        encoding: Encoding,
    },
}

/// A signed timestamp and the window it must fall in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// `header.NAME` or `sig.NAME`.
    pub from: String,
    /// Unit of the number.
    #[serde(default)]
    pub unit: TimestampUnit,
    /// Largest accepted distance from now, in both directions.
    pub tolerance: HumanDuration,
}

/// Units of a numeric timestamp.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    /// Seconds since the Unix epoch.
    #[default]
    S,
    /// Milliseconds since the Unix epoch.
    Ms,
}

/// A handshake: a request matcher and the exact answer the provider expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeSpec {
    /// Name used in logs and metrics.
    pub name: String,
    /// All conditions must hold.
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// The answer.
    pub respond: RespondSpec,
}

/// Handshake conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// JSON pointer → required string value.
    #[serde(default)]
    pub json_equals: BTreeMap<String, String>,
    /// Header name → required value.
    #[serde(default)]
    pub header_equals: BTreeMap<String, String>,
}

/// A handshake answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    /// HTTP status.
    #[serde(default = "ok")]
    pub status: u16,
    /// `Content-Type` of the answer.
    #[serde(default = "text_plain")]
    pub content_type: String,
    /// Body: `json:/pointer`, `header:NAME` or `literal:TEXT`.
    pub body: String,
}

fn comma() -> String {
    ",".to_owned()
}

fn equals() -> String {
    "=".to_owned()
}

fn space() -> String {
    " ".to_owned()
}

const fn ok() -> u16 {
    200
}

fn text_plain() -> String {
    "text/plain; charset=utf-8".to_owned()
}
