//! The shape of `providers/*.yaml`: declarative verification, identity and handshakes.
//! Plain data; [`super::Provider::from_spec`] checks it and compiles it. The format is documented
//! in `docs/provider-format.md`.

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
    /// Scheme family of the catalog (A–H), informational.
    #[serde(default)]
    pub family: Option<String>,
    /// Other names the provider is known by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// How requests are authenticated: one scheme, or alternatives (any verifies).
    pub verify: OneOrMany<VerifySpec>,
    /// Where the event id is, first non-empty wins; none → digest of the body.
    #[serde(default)]
    pub id: OneOrMany<String>,
    /// Where the event type is, first non-empty wins; none → `unknown`.
    #[serde(default)]
    pub event_type: OneOrMany<String>,
    /// Requests answered by hookgate itself and never published.
    #[serde(default)]
    pub handshakes: Vec<HandshakeSpec>,
    /// The answer to an accepted event, when the provider expects something else than 202 JSON.
    #[serde(default)]
    pub accept: Option<RespondSpec>,
}

/// A single item or a list.
#[derive(Debug)]
pub enum OneOrMany<T> {
    /// One item.
    One(T),
    /// Several items, in order.
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    /// Hand-written rather than `untagged`, so that an error inside the item (an unknown scheme
    /// type, a misspelt key) is reported as such instead of "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer, StrDeserializer};
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one item or a list of items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(v)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    /// The items in order.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(items) => items,
        }
    }
}

/// Verification schemes, selected by `type:`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifySpec {
    /// HMAC over signed content.
    Hmac(SignedSpec),
    /// A plain digest over signed content that includes `{secret}` (HubSpot v1/v2).
    Hash(SignedSpec),
    /// Ed25519 signature; the secret is the public key.
    Ed25519(SignedSpec),
    /// ECDSA P-256/SHA-256 signature; the secret is the public key.
    Ecdsa(SignedSpec),
    /// RSA PKCS#1 v1.5 signature; the key is an X.509 certificate, pinned or fetched.
    Rsa(SignedSpec),
    /// A shared token compared with the secret.
    Token(TokenSpec),
    /// HTTP Basic credentials compared with `user:password` secrets.
    Basic {},
    /// A compact JWS/JWT.
    Jwt(JwtSpec),
    /// No authentication at all; `hookgate check` warns.
    None {},
}

/// A signature over content built from the request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSpec {
    /// Digest: `sha1`, `sha256`, `sha512` (hmac, hash).
    #[serde(default)]
    pub algorithm: DigestAlgorithm,
    /// How a configured secret becomes key material.
    #[serde(default)]
    pub key: KeySpec,
    /// Where the signature is and how to parse it.
    pub signature: SignatureSpec,
    /// The signed bytes as a template; exclusive with `canonical`.
    #[serde(default)]
    pub signed_content: Option<String>,
    /// A named canonicaliser for what no template can say.
    #[serde(default)]
    pub canonical: Option<Canonical>,
    /// Replay window, for schemes that sign a timestamp.
    #[serde(default)]
    pub timestamp: Option<TimestampSpec>,
    /// The digest chosen per request by a body field (AWS SNS `SignatureVersion`).
    #[serde(default)]
    pub algorithm_from: Option<AlgorithmFromSpec>,
}

/// A digest named by a body field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmFromSpec {
    /// JSON pointer to the field.
    pub json: String,
    /// Field value → digest; any other value fails verification.
    pub map: BTreeMap<String, DigestAlgorithm>,
}

/// Where a key (certificate) is downloaded from when the request names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSpec {
    /// The value holding the URL (`json:/SigningCertURL`).
    pub url_from: String,
    /// The URL must match this regular expression, pinned certificates included.
    pub url_must_match: String,
    /// How long a downloaded key is kept.
    pub cache: HumanDuration,
}

/// Digest functions.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DigestAlgorithm {
    /// SHA-256.
    #[default]
    Sha256,
    /// SHA-1 (legacy providers).
    Sha1,
    /// SHA-512.
    Sha512,
}

/// Named canonicalisers.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Canonical {
    /// Twilio: URL + sorted form parameters; JSON bodies via `bodySHA256`.
    Twilio,
    /// HubSpot v3: method + decoded URI + body + timestamp.
    HubspotV3,
    /// Contentful: method, path, signed headers and body, newline-separated.
    Contentful,
    /// AWS SNS string-to-sign.
    AwsSns,
}

/// Secret decoding.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// How the text (after prefix stripping) becomes key material.
    #[serde(default, alias = "format")]
    pub decode: KeyDecode,
    /// Prefixes removed before decoding, first match only (e.g. `whsec_`).
    #[serde(default)]
    pub strip_prefix: Vec<String>,
    /// Download the key named by the request, when no pinned key is configured.
    #[serde(default)]
    pub fetch: Option<FetchSpec>,
}

/// Key encodings.
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
    /// Base64 of a DER SubjectPublicKeyInfo.
    SpkiBase64,
    /// PEM public key.
    Pem,
    /// A JSON Web Key.
    Jwk,
    /// A PEM X.509 certificate (its RSA public key).
    X509Pem,
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

/// Signature location and syntax.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// `plain`, `kv` or `list`.
    pub format: SignatureFormatKind,
    /// Header carrying the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// JSON pointer to the signature in the body.
    #[serde(default)]
    pub json: Option<String>,
    /// Query parameter carrying the signature.
    #[serde(default)]
    pub query: Option<String>,
    /// Signature encoding.
    pub encoding: Encoding,
    /// `plain`: required prefix, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: String,
    /// `plain`: accept the value with or without the prefix.
    #[serde(default)]
    pub prefix_optional: bool,
    /// `kv`: separator between pairs.
    #[serde(default = "comma")]
    pub pair_sep: String,
    /// `kv`: separator between key and value.
    #[serde(default = "equals")]
    pub kv_sep: String,
    /// `kv`: keys whose values are signatures.
    #[serde(default)]
    pub sig_keys: Vec<String>,
    /// `kv`: separator between whole `t=…,v1=…` groups, each verified with its own parameters
    /// (Persona sends two groups while a secret rotates).
    #[serde(default)]
    pub group_sep: Option<String>,
    /// `list`: separator between entries.
    #[serde(default = "space")]
    pub sep: String,
    /// `list`: separator between version and signature.
    #[serde(default = "comma")]
    pub version_sep: String,
    /// `list`: versions this scheme verifies.
    #[serde(default)]
    pub versions: Vec<String>,
    /// `positional`: names of the leading values (`[t]` for `t,sig,sig`); the rest are signatures.
    #[serde(default)]
    pub params: Vec<String>,
    /// `ecdsa`: the signature is ASN.1 DER (else raw `r‖s`).
    #[serde(default)]
    pub der: bool,
}

/// Signature syntaxes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormatKind {
    /// One value, optionally behind a prefix.
    Plain,
    /// `key=value` pairs.
    Kv,
    /// `version,signature` entries.
    List,
    /// Leading named values, then signatures, all separated by `sep`: `1663103925004,abc,def`.
    Positional,
}

/// A signed timestamp and the window it must fall in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// `header.NAME`, `sig.NAME` or `json:/pointer`.
    pub from: String,
    /// Unit of the value.
    #[serde(default)]
    pub unit: TimestampUnit,
    /// Largest accepted distance from now, in both directions.
    pub tolerance: HumanDuration,
}

/// Units of a timestamp.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    /// Seconds since the Unix epoch.
    #[default]
    S,
    /// Milliseconds since the Unix epoch.
    Ms,
    /// RFC 3339 date-time.
    Rfc3339,
}

/// A shared token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Header carrying the token (a source's `token_header` overrides it).
    #[serde(default)]
    pub header: Option<String>,
    /// Query parameter carrying the token.
    #[serde(default)]
    pub query: Option<String>,
    /// JSON pointer to the token in the body.
    #[serde(default)]
    pub json: Option<String>,
    /// Required prefix before the token, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
}

/// A JWS/JWT scheme.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// Header carrying the token.
    pub header: String,
    /// Required prefix before the token, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
    /// Accepted `alg` values; the token's must be listed and match the key's type.
    pub algorithms: Vec<String>,
    /// Key form of the secrets.
    #[serde(default)]
    pub key: KeySpec,
    /// Claims that must equal these strings.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// A claim holding the SHA-256 of the raw body.
    #[serde(default)]
    pub body_hash: Option<BodyHashSpec>,
    /// `iat` must be within this of now.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

/// Where a JWT carries the body digest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyHashSpec {
    /// Claim name.
    pub claim: String,
    /// Encoding of the digest.
    pub encoding: Encoding,
}

/// A handshake: a request matcher and the exact answer the provider expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeSpec {
    /// Name used in logs and metrics.
    pub name: String,
    /// Answer before signature verification (unsigned handshakes such as GET challenges).
    #[serde(default)]
    pub before_verify: bool,
    /// All conditions must hold.
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// A value that must equal the source's `verify_token` (else 403).
    #[serde(default)]
    pub check_verify_token: Option<String>,
    /// A value stored as the source's secret (Asana, Notion).
    #[serde(default)]
    pub capture_secret: Option<String>,
    /// A URL to GET to confirm a subscription (AWS SNS), when the source sets `auto_confirm`.
    #[serde(default)]
    pub confirm: Option<ConfirmSpec>,
    /// The answer.
    pub respond: RespondSpec,
}

/// A subscription confirmation by GET.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSpec {
    /// The value holding the URL (`json:/SubscribeURL`).
    pub get: String,
    /// The URL must match this regular expression.
    pub url_must_match: String,
}

/// Handshake conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Query parameters that must be present.
    #[serde(default)]
    pub query_present: Vec<String>,
    /// Query parameter → required value.
    #[serde(default)]
    pub query_equals: BTreeMap<String, String>,
    /// Headers that must be present.
    #[serde(default)]
    pub header_present: Vec<String>,
    /// Header name → required value.
    #[serde(default)]
    pub header_equals: BTreeMap<String, String>,
    /// JSON pointer → required string value.
    #[serde(default)]
    pub json_equals: BTreeMap<String, serde_json::Value>,
    /// JSON pointers that must be present.
    #[serde(default)]
    pub json_present: Vec<String>,
}

/// An answer hookgate gives itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    /// HTTP status.
    #[serde(default = "ok")]
    pub status: u16,
    /// `Content-Type` of the answer.
    #[serde(default = "text_plain")]
    pub content_type: String,
    /// Body: a value (`json:/p`, `query:N`, `header:N`, `literal:T`, template).
    #[serde(default)]
    pub body: Option<String>,
    /// Body: a JSON object of values.
    #[serde(default)]
    pub json_object: Option<BTreeMap<String, String>>,
    /// Extra response headers, as values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    "text/plain".to_owned()
}
