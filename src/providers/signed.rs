//! Schemes that sign content built from the request: HMAC (most providers), a plain digest
//! including the secret (HubSpot v1/v2), Ed25519 (Discord, Standard Webhooks `v1a`) and ECDSA
//! P-256 (SendGrid). One engine: find the signatures, build the content, check each signature
//! against each key, then the timestamp.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use http::HeaderName;
use regex::Regex;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;
use super::canonical;
use super::key::{Key, KeyKind, decode_key};
use super::request::RequestView;
use super::signature::SignatureFormat;
use super::spec::{Canonical, DigestAlgorithm, KeySpec, SignedSpec};
use super::template::{Allowed, Template};
use super::timestamp::Timestamp;
use super::value::{Value, json_pointer, scalar_text};
use crate::config::secret::Secret;

/// How signatures are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC with a digest.
    Hmac(DigestAlgorithm),
    /// A plain digest of content that includes `{secret}`.
    Hash(DigestAlgorithm),
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256 with SHA-256; `der` = ASN.1 DER signatures, else raw `r‖s`.
    Ecdsa {
        /// DER-encoded signatures.
        der: bool,
    },
    /// RSA PKCS#1 v1.5 with a digest (possibly chosen per request).
    Rsa(DigestAlgorithm),
}

/// Downloading the key a request names (AWS SNS `SigningCertURL`).
#[derive(Debug, Clone)]
pub struct KeyFetch {
    url_from: Value,
    url_must_match: Regex,
    /// How long a downloaded key is kept.
    pub cache: Duration,
}

/// A compiled signed scheme.
#[derive(Debug, Clone)]
pub struct SignedScheme {
    algorithm: Algorithm,
    key: KeySpec,
    signature: SignatureFormat,
    content: Content,
    timestamp: Option<Timestamp>,
    digest_from: Option<(String, Vec<(String, DigestAlgorithm)>)>,
    fetch: Option<KeyFetch>,
}

#[derive(Debug, Clone)]
enum Content {
    Template(Template),
    Canonical(Canonical),
}

impl SignedScheme {
    /// Compiles the spec; errors are `(field, message)`.
    pub fn from_spec(algorithm: Algorithm, spec: &SignedSpec) -> Result<Self, (String, String)> {
        let signature = SignatureFormat::from_spec(&spec.signature).map_err(|e| ("verify.signature".into(), e))?;
        let allowed = Allowed { sig_params: signature.has_params(), secret: matches!(algorithm, Algorithm::Hash(_)) };
        let content = match (&spec.signed_content, spec.canonical) {
            (Some(text), None) => {
                Content::Template(Template::parse(text, allowed).map_err(|e| ("verify.signed_content".into(), e))?)
            }
            (None, Some(kind)) => Content::Canonical(kind),
            _ => {
                return Err(("verify".into(), "give exactly one of `signed_content` or `canonical`".into()));
            }
        };
        let timestamp = spec
            .timestamp
            .as_ref()
            .map(|t| Timestamp::from_spec(t, signature.has_params()))
            .transpose()
            .map_err(|e| ("verify.timestamp.from".into(), e))?;
        let algorithm = match algorithm {
            Algorithm::Ecdsa { .. } => Algorithm::Ecdsa { der: spec.signature.der },
            other => other,
        };
        let digest_from = spec
            .algorithm_from
            .as_ref()
            .map(|a| {
                json_pointer(&a.json).map(|p| (p.to_owned(), a.map.iter().map(|(k, v)| (k.clone(), *v)).collect()))
            })
            .transpose()
            .map_err(|e| ("verify.algorithm_from.json".into(), e))?;
        let fetch = spec
            .key
            .fetch
            .as_ref()
            .map(|f| {
                let url_from = Value::parse(&f.url_from).map_err(|e| ("verify.key.fetch.url_from".to_owned(), e))?;
                let url_must_match = Regex::new(&f.url_must_match)
                    .map_err(|e| ("verify.key.fetch.url_must_match".to_owned(), e.to_string()))?;
                Ok::<_, (String, String)>(KeyFetch { url_from, url_must_match, cache: f.cache.0 })
            })
            .transpose()?;
        Ok(Self { algorithm, key: spec.key.clone(), signature, content, timestamp, digest_from, fetch })
    }

    /// The kind of key this scheme's secrets decode to.
    pub fn key_kind(&self) -> KeyKind {
        match self.algorithm {
            Algorithm::Hmac(_) | Algorithm::Hash(_) => KeyKind::Bytes,
            Algorithm::Ed25519 => KeyKind::Ed25519,
            Algorithm::Ecdsa { .. } => KeyKind::P256,
            Algorithm::Rsa(_) => KeyKind::Rsa,
        }
    }

    /// Where a fetched key comes from, if the scheme downloads keys.
    pub fn key_fetch(&self) -> Option<&KeyFetch> {
        self.fetch.as_ref()
    }

    /// The key URL the request names, checked against the pinned pattern. Checked whether or not
    /// the key is pinned, so a request can never point verification at a foreign certificate.
    pub fn key_url(&self, req: &RequestView<'_>) -> Result<Option<String>, VerifyError> {
        let Some(fetch) = &self.fetch else { return Ok(None) };
        let url = fetch.url_from.get(req, None).ok_or(VerifyError::SignatureMissing)?;
        if !fetch.url_must_match.is_match(&url) {
            return Err(VerifyError::SignatureInvalid);
        }
        Ok(Some(url.into_owned()))
    }

    /// The algorithm for this request: fixed, or named by a body field.
    fn algorithm_for(&self, req: &RequestView<'_>) -> Result<Algorithm, VerifyError> {
        let Some((pointer, map)) = &self.digest_from else { return Ok(self.algorithm) };
        let named =
            req.json.and_then(|j| j.pointer(pointer)).and_then(scalar_text).ok_or(VerifyError::SignatureMissing)?;
        let digest = map.iter().find(|(k, _)| *k == named).map(|(_, d)| *d).ok_or(VerifyError::SignatureInvalid)?;
        Ok(match self.algorithm {
            Algorithm::Rsa(_) => Algorithm::Rsa(digest),
            Algorithm::Hmac(_) => Algorithm::Hmac(digest),
            Algorithm::Hash(_) => Algorithm::Hash(digest),
            other => other,
        })
    }

    /// Decodes a configured secret into this scheme's key.
    pub fn decode_key(&self, secret: &Secret) -> Result<Key, String> {
        decode_key(self.key_kind(), &self.key, secret)
    }

    /// How secrets decode.
    pub fn key_spec(&self) -> &KeySpec {
        &self.key
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The provider's default replay window, if it signs a timestamp.
    pub fn default_tolerance(&self) -> Option<Duration> {
        self.timestamp.as_ref().map(|t| t.tolerance)
    }

    /// Whether verification reads the parsed JSON body.
    pub fn needs_json(&self) -> bool {
        self.digest_from.is_some()
            || self.signature.location().needs_json()
            || self.timestamp.as_ref().is_some_and(Timestamp::needs_json)
            || matches!(&self.content, Content::Template(t) if t.needs_json())
            || matches!(self.content, Content::Canonical(Canonical::AwsSns))
    }

    /// Whether the content includes the source's public URL.
    pub fn needs_url(&self) -> bool {
        match &self.content {
            Content::Template(t) => t.needs_url(),
            Content::Canonical(c) => c.needs_url(),
        }
    }

    /// Headers a request must carry for this scheme.
    pub fn required_headers(&self) -> Vec<HeaderName> {
        let mut headers: Vec<HeaderName> = self.signature.location().header().into_iter().cloned().collect();
        if let Content::Template(t) = &self.content {
            headers.extend(t.headers().cloned());
        }
        headers.extend(self.timestamp.as_ref().and_then(|t| t.header()).cloned());
        headers.extend(canonical::required_headers(&self.content_kind()));
        headers.dedup();
        headers
    }

    fn content_kind(&self) -> Option<Canonical> {
        match self.content {
            Content::Canonical(c) => Some(c),
            Content::Template(_) => None,
        }
    }

    /// Checks that some signature in the request verifies under some key, then that the signed
    /// timestamp is within `tolerance` (default: the provider's) of `now`. Signature first, so
    /// a forger learns nothing about the clock check.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        tolerance: Option<Duration>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let groups = self.signature.parse_groups(req)?;
        self.key_url(req)?;
        let algorithm = self.algorithm_for(req)?;
        // Each group (usually one) is checked with its own parameters; any verifying is enough.
        let mut worst: Option<VerifyError> = None;
        for sigs in &groups {
            match self.verify_group(req, keys, sigs, algorithm, tolerance, now) {
                Ok(()) => return Ok(()),
                Err(e) if worst.is_none_or(|w| e.rank() > w.rank()) => worst = Some(e),
                Err(_) => {}
            }
        }
        Err(worst.unwrap_or(VerifyError::SignatureInvalid))
    }

    fn verify_group(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        sigs: &super::signature::Signatures,
        algorithm: Algorithm,
        tolerance: Option<Duration>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let matched = match &self.content {
            Content::Template(template) => keys.iter().any(|key| {
                let secret = key.bytes();
                match template.resolve(req, &sigs.params, secret.filter(|_| self.is_hash())) {
                    Ok(parts) => matches(algorithm, key, &parts, &sigs.candidates),
                    Err(_) => false,
                }
            }),
            Content::Canonical(kind) => {
                let contents = canonical::build(*kind, req)?;
                keys.iter().any(|key| {
                    contents.iter().any(|c| matches(algorithm, key, &[Cow::Borrowed(c.as_slice())], &sigs.candidates))
                })
            }
        };
        if !matched {
            // A template input that is absent is a missing signature, not a forgery.
            if let Content::Template(template) = &self.content {
                template.resolve(req, &sigs.params, Some(b"")).map_err(|_| VerifyError::SignatureMissing)?;
            }
            return Err(VerifyError::SignatureInvalid);
        }
        if let Some(ts) = &self.timestamp {
            ts.check(req, &sigs.params, tolerance.unwrap_or(ts.tolerance), now)?;
        }
        Ok(())
    }

    fn is_hash(&self) -> bool {
        matches!(self.algorithm, Algorithm::Hash(_))
    }

    /// The signature this scheme expects for `req` under a shared-secret `key`, for tests and the
    /// `sign` command. `None` for asymmetric schemes or when an input is missing.
    pub fn sign(&self, key: &Key, req: &RequestView<'_>, params: &[(String, String)]) -> Option<Vec<u8>> {
        let secret = key.bytes()?;
        let content = self.content(req, params, Some(secret)).ok()?;
        let parts = [Cow::Borrowed(content.as_slice())];
        match self.algorithm_for(req).ok()? {
            Algorithm::Hmac(digest) => Some(hmac(digest, secret, &parts)),
            Algorithm::Hash(digest) => Some(hash(digest, &parts)),
            _ => None,
        }
    }

    /// The bytes this scheme signs for `req` (the first candidate, for canonical forms); for
    /// signing tools and diagnosis.
    pub fn content(
        &self,
        req: &RequestView<'_>,
        params: &[(String, String)],
        secret: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        match &self.content {
            Content::Template(t) => {
                t.resolve(req, params, secret.filter(|_| self.is_hash())).map(|p| p.concat()).map_err(|m| m.0)
            }
            Content::Canonical(kind) => canonical::build(*kind, req)
                .map_err(|e| format!("{kind:?}: {e}"))?
                .into_iter()
                .next()
                .ok_or_else(|| "no content".to_owned()),
        }
    }

    /// Headers the signed content reads (besides signature and timestamp), for signing tools.
    pub fn content_headers(&self) -> Vec<HeaderName> {
        match &self.content {
            Content::Template(t) => t.headers().cloned().collect(),
            Content::Canonical(_) => Vec::new(),
        }
    }

    /// The signature format, for tools that place a computed signature.
    pub fn signature(&self) -> &SignatureFormat {
        &self.signature
    }

    /// The timestamp rule, if any.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }
}

fn any_equal(expected: &[u8], candidates: &[Vec<u8>]) -> bool {
    candidates.iter().fold(0u8, |acc, c| acc | u8::from(bool::from(c.as_slice().ct_eq(expected)))) == 1
}

fn hmac(digest: DigestAlgorithm, key: &[u8], parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match digest {
        DigestAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
        DigestAlgorithm::Sha1 => run::<Hmac<Sha1>>(key, parts),
        DigestAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
}

fn hash(digest: DigestAlgorithm, parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
        let mut d = D::new();
        for part in parts {
            d.update(part);
        }
        d.finalize().to_vec()
    }
    match digest {
        DigestAlgorithm::Sha256 => run::<Sha256>(parts),
        DigestAlgorithm::Sha1 => run::<Sha1>(parts),
        DigestAlgorithm::Sha512 => run::<Sha512>(parts),
    }
}

/// Whether any candidate is the signature of `parts` under `key`. Every candidate is
/// compared, so timing does not reveal which one matched.
fn matches(algorithm: Algorithm, key: &Key, parts: &[Cow<'_, [u8]>], candidates: &[Vec<u8>]) -> bool {
    match (algorithm, key) {
        (Algorithm::Hmac(digest), Key::Bytes(secret)) => any_equal(&hmac(digest, secret, parts), candidates),
        (Algorithm::Hash(digest), Key::Bytes(_)) => any_equal(&hash(digest, parts), candidates),
        (Algorithm::Ed25519, Key::Ed25519(public)) => {
            let message = parts.concat();
            candidates.iter().fold(false, |ok, c| {
                let valid = <[u8; 64]>::try_from(c.as_slice())
                    .map(|bytes| public.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok())
                    .unwrap_or(false);
                ok | valid
            })
        }
        (Algorithm::Ecdsa { der }, Key::P256(public, _)) => {
            use p256::ecdsa::signature::Verifier;
            let message = parts.concat();
            candidates.iter().fold(false, |ok, c| {
                let signature =
                    if der { p256::ecdsa::Signature::from_der(c) } else { p256::ecdsa::Signature::from_slice(c) };
                ok | signature.is_ok_and(|s| public.verify(&message, &s).is_ok())
            })
        }
        (Algorithm::Rsa(digest), Key::Rsa(public)) => {
            let hashed = hash(digest, parts);
            let padding = || match digest {
                DigestAlgorithm::Sha1 => rsa::Pkcs1v15Sign::new::<Sha1>(),
                DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
            };
            candidates.iter().fold(false, |ok, c| ok | public.verify(padding(), &hashed, c).is_ok())
        }
        _ => false,
    }
}
