//! Providers as data: each `providers/NAME.yaml` is parsed into a [`spec::ProviderSpec`] and
//! compiled into a [`Provider`] — a verifier, id/type extraction rules and handshakes. No
//! provider has Rust code of its own; scheme families do.

pub mod canonical;
pub mod handshake;
pub mod jwt;
pub mod key;
pub mod request;
pub mod signature;
pub mod signed;
pub mod spec;
pub mod template;
pub mod timestamp;
pub mod token;
pub mod value;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http::HeaderName;
use sha2::{Digest, Sha256};

use crate::config::error::{ConfigError, syntax_error};
use crate::config::secret::Secret;
use handshake::{Handshake, Respond};
use key::Key;
use request::RequestView;
use signed::{Algorithm, SignedScheme};
use spec::{ProviderSpec, VerifySpec};
use token::TokenScheme;
use value::Value;

/// Why a request failed verification. Deliberately coarse: the client is never told more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("signature missing")]
    SignatureMissing,
    /// No signature matched, or the signature header is malformed.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The signed timestamp is too far from now.
    #[error("timestamp out of tolerance")]
    TimestampOutOfTolerance,
}

impl VerifyError {
    /// When several schemes fail, the most telling error wins: a valid but stale signature says
    /// more than a wrong one, and a wrong one more than an absent one.
    pub(crate) fn rank(self) -> u8 {
        match self {
            VerifyError::SignatureMissing => 0,
            VerifyError::SignatureInvalid => 1,
            VerifyError::TimestampOutOfTolerance => 2,
        }
    }
}

/// Per-source settings that verification reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// Overrides the provider's timestamp tolerance.
    pub tolerance: Option<Duration>,
    /// Overrides the token header of `token` schemes (Okta's admin-chosen header).
    pub token_header: Option<&'a HeaderName>,
}

/// One verification scheme.
#[derive(Debug)]
pub enum Scheme {
    /// Signature over content built from the request.
    Signed(Box<SignedScheme>),
    /// Shared token.
    Token(TokenScheme),
    /// HTTP Basic credentials.
    Basic,
    /// JWS/JWT.
    Jwt(jwt::JwtScheme),
    /// No authentication.
    None,
}

/// Decoded secrets, per scheme of the provider (a secret may fit several).
#[derive(Debug, Clone, Default)]
pub struct ProviderKeys(Vec<Vec<Key>>);

impl ProviderKeys {
    /// Whether no secret fits any scheme.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Vec::is_empty)
    }

    /// The keys of scheme `index`.
    pub fn for_scheme(&self, index: usize) -> &[Key] {
        self.0.get(index).map_or(&[], Vec::as_slice)
    }

    /// These keys plus a downloaded one for scheme `index`.
    pub fn with_fetched(&self, index: usize, key: Key) -> Self {
        let mut keys = self.clone();
        if let Some(slot) = keys.0.get_mut(index) {
            slot.push(key);
        }
        keys
    }

    /// The first shared-secret bytes, for handshake answers that MAC a value (Zoom).
    pub fn first_shared_secret(&self) -> Option<&[u8]> {
        self.0.iter().flatten().find_map(Key::bytes)
    }
}

/// A compiled provider.
#[derive(Debug)]
pub struct Provider {
    /// File name without `.yaml`.
    pub name: String,
    /// Documentation link from the file.
    pub docs: Option<String>,
    /// Scheme family (catalog letter).
    pub family: Option<String>,
    /// Other names.
    pub aliases: Vec<String>,
    /// `id` and `event_type` as written, for listings.
    pub identity: (Vec<String>, Vec<String>),
    schemes: Vec<Scheme>,
    id: Vec<Value>,
    event_type: Vec<Value>,
    handshakes: Vec<Handshake>,
    accept: Option<Respond>,
}

impl Provider {
    /// Reads and compiles `dir/NAME.yaml`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, ConfigError> {
        let path = dir.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        Self::parse(name, &text, path)
    }

    /// Parses and compiles provider YAML; `path` is for error messages.
    pub fn parse(name: &str, text: &str, path: PathBuf) -> Result<Self, ConfigError> {
        let spec: ProviderSpec = serde_yaml_ng::from_str(text).map_err(|e| syntax_error(path.clone(), &e))?;
        Self::from_spec(name, &spec).map_err(|(field, message)| ConfigError::Invalid { path, field, message })
    }

    /// Compiles a parsed spec; errors are `(field, message)`.
    pub fn from_spec(name: &str, spec: &ProviderSpec) -> Result<Self, (String, String)> {
        let schemes = spec.verify.as_slice().iter().map(compile_scheme).collect::<Result<Vec<_>, _>>()?;
        if schemes.is_empty() {
            return Err(("verify".into(), "list at least one scheme, or write `verify: { type: none }`".into()));
        }
        // Any scheme verifying is enough, so `none` beside another would accept everything.
        if schemes.len() > 1 && schemes.iter().any(|s| matches!(s, Scheme::None)) {
            return Err(("verify".into(), "`type: none` cannot be listed with other schemes".into()));
        }
        let values = |key: &str, list: &[String]| {
            list.iter().map(|f| Value::parse(f)).collect::<Result<Vec<_>, _>>().map_err(|e| (key.to_owned(), e))
        };
        let handshakes = spec.handshakes.iter().map(Handshake::from_spec).collect::<Result<_, _>>()?;
        let accept =
            spec.accept.as_ref().map(Respond::from_spec).transpose().map_err(|(f, e)| (format!("accept.{f}"), e))?;
        Ok(Self {
            name: name.to_owned(),
            docs: spec.docs.clone(),
            family: spec.family.clone(),
            aliases: spec.aliases.clone(),
            identity: (spec.id.as_slice().to_vec(), spec.event_type.as_slice().to_vec()),
            schemes,
            id: values("id", spec.id.as_slice())?,
            event_type: values("event_type", spec.event_type.as_slice())?,
            handshakes,
            accept,
        })
    }

    /// Decodes every configured secret for the schemes it fits; a secret that fits none is an
    /// error naming its index and the expected form.
    pub fn decode_secrets(&self, secrets: &[Secret]) -> Result<ProviderKeys, Vec<(usize, String)>> {
        let mut keys = vec![Vec::new(); self.schemes.len()];
        let mut errors = Vec::new();
        for (i, secret) in secrets.iter().enumerate() {
            let mut first_error = None;
            let mut fitted = false;
            for (slot, scheme) in keys.iter_mut().zip(&self.schemes) {
                match scheme.decode_key(secret) {
                    Ok(Some(key)) => {
                        slot.push(key);
                        fitted = true;
                    }
                    Ok(None) => fitted = true,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !fitted {
                errors.push((i, first_error.unwrap_or_default()));
            }
        }
        if errors.is_empty() { Ok(ProviderKeys(keys)) } else { Err(errors) }
    }

    /// Whether requests are accepted without authentication (`verify: { type: none }`).
    pub fn is_unauthenticated(&self) -> bool {
        self.schemes.iter().all(|s| matches!(s, Scheme::None))
    }

    /// The key this request asks to be downloaded: `(scheme index, URL, cache time)`, for a
    /// scheme with `key.fetch` and no pinned key. A URL off the pinned pattern gives `None`, and
    /// verification then fails closed.
    pub fn key_to_fetch(&self, req: &RequestView<'_>, keys: &ProviderKeys) -> Option<(usize, String, Duration)> {
        self.schemes.iter().enumerate().find_map(|(index, scheme)| {
            let Scheme::Signed(signed) = scheme else { return None };
            let fetch = signed.key_fetch()?;
            if keys.0.get(index).is_some_and(|k| !k.is_empty()) {
                return None;
            }
            let url = signed.key_url(req).ok()??;
            Some((index, url, fetch.cache))
        })
    }

    /// Whether every scheme authenticates the body (or fields of it): a changed body then fails.
    pub fn signs_body(&self) -> bool {
        self.schemes.iter().all(|s| match s {
            Scheme::Signed(_) => true,
            Scheme::Jwt(j) => j.signs_body(),
            Scheme::Token(_) | Scheme::Basic | Scheme::None => false,
        })
    }

    /// Whether a source of this provider needs secrets at all: not when it has no
    /// authentication, nor when its keys are downloaded (AWS SNS certificates).
    pub fn needs_secrets(&self) -> bool {
        !self.schemes.iter().all(|s| match s {
            Scheme::None => true,
            Scheme::Signed(x) => x.key_fetch().is_some(),
            _ => false,
        })
    }

    /// Whether a source of this provider must configure `public_url`.
    pub fn needs_public_url(&self) -> bool {
        self.schemes.iter().any(|s| matches!(s, Scheme::Signed(x) if x.needs_url()))
    }

    /// Whether verification reads the parsed JSON body (signature or signed fields inside it).
    pub fn needs_json_to_verify(&self) -> bool {
        self.schemes.iter().any(|s| match s {
            Scheme::Signed(x) => x.needs_json(),
            Scheme::Token(t) => t.needs_json(),
            _ => false,
        })
    }

    /// The provider's default timestamp tolerance, if a scheme signs a timestamp.
    pub fn default_tolerance(&self) -> Option<Duration> {
        (0..self.schemes.len()).find_map(|i| self.scheme_tolerance(i))
    }

    /// The timestamp tolerance of scheme `index`, if it signs a timestamp.
    pub fn scheme_tolerance(&self, index: usize) -> Option<Duration> {
        match self.schemes.get(index)? {
            Scheme::Signed(x) => x.default_tolerance(),
            Scheme::Jwt(j) => j.max_age(),
            _ => None,
        }
    }

    /// Headers each scheme needs, per scheme.
    pub fn required_headers(&self) -> Vec<Vec<HeaderName>> {
        self.schemes
            .iter()
            .map(|s| match s {
                Scheme::Signed(x) => x.required_headers(),
                Scheme::Token(t) => t.header().into_iter().cloned().collect(),
                Scheme::Basic => vec![http::header::AUTHORIZATION],
                Scheme::Jwt(j) => vec![j.header().clone()],
                Scheme::None => Vec::new(),
            })
            .collect()
    }

    /// Short names of the schemes (`hmac-sha256`, `ed25519`, `token`, ...), for listings.
    pub fn scheme_names(&self) -> Vec<String> {
        self.schemes
            .iter()
            .map(|s| match s {
                Scheme::Signed(x) => match x.algorithm() {
                    Algorithm::Hmac(d) => format!("hmac-{d:?}").to_lowercase(),
                    Algorithm::Hash(d) => format!("hash-{d:?}").to_lowercase(),
                    Algorithm::Ed25519 => "ed25519".to_owned(),
                    Algorithm::Ecdsa { .. } => "ecdsa-p256".to_owned(),
                    Algorithm::Rsa(_) => "rsa".to_owned(),
                },
                Scheme::Token(_) => "token".to_owned(),
                Scheme::Basic => "basic".to_owned(),
                Scheme::Jwt(_) => "jwt".to_owned(),
                Scheme::None => "none".to_owned(),
            })
            .collect()
    }

    /// The schemes, in file order, for signing tools.
    pub fn schemes(&self) -> &[Scheme] {
        &self.schemes
    }

    /// What a user puts in a source's `secrets`, for listings.
    pub fn secrets_hint(&self) -> String {
        if self.handshakes.iter().any(Handshake::captures_secret) {
            return "none: handed over in the handshake".to_owned();
        }
        let mut hints: Vec<String> = Vec::new();
        for hint in self.schemes.iter().map(scheme_secret_hint) {
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
        hints.join(", or ")
    }

    /// The signed schemes, for signing tools and tests.
    pub fn signed_schemes(&self) -> impl Iterator<Item = &SignedScheme> {
        self.schemes.iter().filter_map(|s| match s {
            Scheme::Signed(x) => Some(x.as_ref()),
            _ => None,
        })
    }

    /// Verifies the request: it passes if any scheme verifies it with that scheme's keys.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &ProviderKeys,
        ctx: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        self.verifying_scheme(req, keys, ctx, now).map(|_| ())
    }

    /// As [`Provider::verify`], returning the index of the scheme that verified the request.
    pub fn verifying_scheme(
        &self,
        req: &RequestView<'_>,
        keys: &ProviderKeys,
        ctx: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<usize, VerifyError> {
        let mut worst: Option<VerifyError> = None;
        for (index, (scheme, keys)) in self.schemes.iter().zip(&keys.0).enumerate() {
            match scheme.verify(req, keys, ctx, now) {
                Ok(()) => return Ok(index),
                Err(e) => {
                    if worst.is_none_or(|w| e.rank() > w.rank()) {
                        worst = Some(e);
                    }
                }
            }
        }
        Err(worst.unwrap_or(VerifyError::SignatureInvalid))
    }

    /// The event id as the provider defines it, else `sha256:<hex of the body>`, so a
    /// redelivered identical request deduplicates.
    pub fn event_id(&self, req: &RequestView<'_>) -> String {
        first_value(&self.id, req).unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(req.body))))
    }

    /// The event type as the provider defines it, else `unknown`.
    pub fn event_type(&self, req: &RequestView<'_>) -> String {
        first_value(&self.event_type, req).unwrap_or_else(|| "unknown".to_owned())
    }

    /// Whether the event id or type is read from the JSON body (else the body need not be parsed
    /// to identify the event: GitHub, Shopify, ...).
    pub fn identity_reads_json(&self) -> bool {
        self.id.iter().chain(&self.event_type).any(Value::reads_json)
    }

    /// The handshakes, in file order.
    pub fn handshakes(&self) -> &[Handshake] {
        &self.handshakes
    }

    /// The first handshake of the given phase this request is, if any.
    pub fn handshake(&self, req: &RequestView<'_>, before_verify: bool) -> Option<&Handshake> {
        self.handshakes.iter().find(|h| h.before_verify == before_verify && h.matches(req))
    }

    /// The provider's own answer to accepted events, if it expects one.
    pub fn accept(&self) -> Option<&Respond> {
        self.accept.as_ref()
    }
}

impl Scheme {
    /// `Ok(None)`: the scheme takes no key (none).
    fn decode_key(&self, secret: &Secret) -> Result<Option<Key>, String> {
        match self {
            Scheme::Signed(x) => x.decode_key(secret).map(Some),
            Scheme::Jwt(j) => j.decode_key(secret).map(Some),
            Scheme::Token(_) | Scheme::Basic => {
                if secret.expose().is_empty() {
                    Err("secret is empty".into())
                } else {
                    Ok(Some(Key::Bytes(secret.expose().as_bytes().to_vec())))
                }
            }
            Scheme::None => Ok(None),
        }
    }

    fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        ctx: VerifyContext<'_>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        match self {
            Scheme::Signed(x) => x.verify(req, keys, ctx.tolerance, now),
            Scheme::Token(t) => t.verify(req, keys, ctx.token_header),
            Scheme::Basic => token::verify_basic(req, keys),
            Scheme::Jwt(j) => j.verify(req, keys, ctx.tolerance, now),
            Scheme::None => Ok(()),
        }
    }
}

fn compile_scheme(spec: &VerifySpec) -> Result<Scheme, (String, String)> {
    let signed = |algorithm, spec| SignedScheme::from_spec(algorithm, spec).map(|s| Scheme::Signed(Box::new(s)));
    match spec {
        VerifySpec::Hmac(s) => signed(Algorithm::Hmac(s.algorithm), s),
        VerifySpec::Hash(s) => signed(Algorithm::Hash(s.algorithm), s),
        VerifySpec::Ed25519(s) => signed(Algorithm::Ed25519, s),
        VerifySpec::Ecdsa(s) => signed(Algorithm::Ecdsa { der: s.signature.der }, s),
        VerifySpec::Rsa(s) => signed(Algorithm::Rsa(s.algorithm), s),
        VerifySpec::Token(t) => TokenScheme::from_spec(t).map(Scheme::Token),
        VerifySpec::Basic {} => Ok(Scheme::Basic),
        VerifySpec::Jwt(j) => jwt::JwtScheme::from_spec(j).map(Scheme::Jwt),
        VerifySpec::None {} => Ok(Scheme::None),
    }
}

fn scheme_secret_hint(scheme: &Scheme) -> String {
    use spec::KeyDecode;
    let prefixed = |spec: &spec::KeySpec, what: &str| match spec.strip_prefix.first() {
        Some(prefix) => format!("`{prefix}…` {what}"),
        None => what.to_owned(),
    };
    match scheme {
        Scheme::Signed(s) => match (s.algorithm(), s.key_spec().decode) {
            (Algorithm::Ed25519, _) => prefixed(s.key_spec(), "Ed25519 public key"),
            (Algorithm::Ecdsa { .. }, _) => "P-256 public key (base64 DER)".to_owned(),
            (Algorithm::Rsa(_), _) => "none (certificates are downloaded), or pinned PEM certificates".to_owned(),
            (_, KeyDecode::Hex) => "hex HMAC key".to_owned(),
            (_, KeyDecode::Base64 | KeyDecode::Base64url) => prefixed(s.key_spec(), "base64 secret"),
            _ => "signing secret".to_owned(),
        },
        Scheme::Token(_) => "shared token".to_owned(),
        Scheme::Basic => "`user:password`".to_owned(),
        Scheme::Jwt(j) if j.key_spec().decode == KeyDecode::Jwk => "JWK (JSON)".to_owned(),
        Scheme::Jwt(_) => "JWS secret".to_owned(),
        Scheme::None => "none".to_owned(),
    }
}

fn first_value(values: &[Value], req: &RequestView<'_>) -> Option<String> {
    values.iter().find_map(|v| v.get(req, None).filter(|s| !s.is_empty())).map(|v| v.into_owned())
}

#[cfg(test)]
mod tests;
