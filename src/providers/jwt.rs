//! JWS/JWT schemes (Plaid ES256 with JWKs, Netlify HS256): the token's `alg` must be on the
//! provider's allow-list *and* match the key's type, so a token can never choose to be checked
//! as an HMAC under a public key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::HeaderName;
use serde_json::Value as Json;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;
use super::key::{Key, KeyKind, decode_key};
use super::request::RequestView;
use super::signature::decode;
use super::spec::{Encoding, JwtSpec, KeySpec};
use super::value::header_name;
use crate::config::secret::Secret;

/// Algorithms hookgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Hs256,
    Hs512,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "HS512" => Some(Alg::Hs512),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// A compiled JWT scheme.
#[derive(Debug, Clone)]
pub struct JwtScheme {
    header: HeaderName,
    prefix: String,
    algorithms: Vec<Alg>,
    key: KeySpec,
    claims: Vec<(String, String)>,
    body_hash: Option<(String, Encoding)>,
    max_age: Option<Duration>,
}

impl JwtScheme {
    /// Compiles the spec.
    pub fn from_spec(spec: &JwtSpec) -> Result<Self, (String, String)> {
        let header = header_name(&spec.header).map_err(|e| ("verify.header".to_owned(), e))?;
        let algorithms = spec
            .algorithms
            .iter()
            .map(|a| {
                Alg::parse(a).ok_or_else(|| {
                    (
                        "verify.algorithms".to_owned(),
                        format!("unsupported JWT algorithm `{a}`: use HS256, HS512 or ES256"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(("verify.algorithms".into(), "list at least one algorithm".into()));
        }
        Ok(Self {
            header,
            prefix: spec.prefix.clone(),
            algorithms,
            key: spec.key.clone(),
            claims: spec.claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body_hash: spec.body_hash.as_ref().map(|b| (b.claim.clone(), b.encoding)),
            max_age: spec.max_age.map(|d| d.0),
        })
    }

    /// Decodes a configured secret: an HMAC secret or a JWK.
    pub fn decode_key(&self, secret: &Secret) -> Result<Key, String> {
        decode_key(KeyKind::Jwt, &self.key, secret)
    }

    /// How secrets decode.
    pub fn key_spec(&self) -> &KeySpec {
        &self.key
    }

    /// The header carrying the token.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// A token as the provider would send it, HMAC-signed with `secret` (the first allowed HS*
    /// algorithm), with the configured claims, body digest and `iat`; for signing tools.
    pub fn sign_hmac(&self, secret: &[u8], body: &[u8], now: SystemTime) -> Option<String> {
        let alg = self.algorithms.iter().copied().find(|a| matches!(a, Alg::Hs256 | Alg::Hs512))?;
        let name = if alg == Alg::Hs256 { "HS256" } else { "HS512" };
        let input = self.signing_input(name, body, now);
        let signature = match alg {
            Alg::Hs256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut mac = Hmac::<Sha512>::new_from_slice(secret).ok()?;
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
        };
        Some(format!("{}{input}.{}", self.prefix, URL_SAFE_NO_PAD.encode(signature)))
    }

    /// A token signed with a P-256 private key (ES256, raw `r‖s`), if the scheme allows ES256;
    /// for signing tools standing in for the provider.
    pub fn sign_es256(&self, key: &p256::ecdsa::SigningKey, body: &[u8], now: SystemTime) -> Option<String> {
        use p256::ecdsa::signature::Signer;
        if !self.algorithms.contains(&Alg::Es256) {
            return None;
        }
        let input = self.signing_input("ES256", body, now);
        let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
        Some(format!("{}{input}.{}", self.prefix, URL_SAFE_NO_PAD.encode(signature.to_bytes())))
    }

    /// `header.payload` with the configured claims, the body digest and `iat`.
    fn signing_input(&self, alg: &str, body: &[u8], now: SystemTime) -> String {
        let mut claims: serde_json::Map<String, Json> =
            self.claims.iter().map(|(k, v)| (k.clone(), Json::from(v.as_str()))).collect();
        if let Some((claim, encoding)) = &self.body_hash {
            claims.insert(claim.clone(), Json::from(super::signature::encode(*encoding, &Sha256::digest(body))));
        }
        claims.insert("iat".into(), Json::from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()));
        let head = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(Json::Object(claims).to_string());
        format!("{head}.{payload}")
    }

    /// Whether the token carries a digest of the body.
    pub fn signs_body(&self) -> bool {
        self.body_hash.is_some()
    }

    /// The replay window on `iat`, if any.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Verifies the token's signature, claims, body hash and age.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        tolerance: Option<Duration>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let value = req.header(self.header.as_str()).ok_or(VerifyError::SignatureMissing)?;
        let token = value.strip_prefix(self.prefix.as_str()).ok_or(VerifyError::SignatureInvalid)?.trim();
        let [head, payload, signature] = token.split('.').collect::<Vec<_>>()[..] else {
            return Err(VerifyError::SignatureInvalid);
        };
        let header = decode_json(head)?;
        let alg = header["alg"].as_str().and_then(Alg::parse).filter(|a| self.algorithms.contains(a));
        let alg = alg.ok_or(VerifyError::SignatureInvalid)?;
        let kid = header["kid"].as_str();
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| VerifyError::SignatureInvalid)?;
        let signing_input = &token.as_bytes()[..head.len() + 1 + payload.len()];
        let valid = keys.iter().any(|key| signature_valid(alg, key, kid, signing_input, &signature));
        if !valid {
            return Err(VerifyError::SignatureInvalid);
        }
        let claims = decode_json(payload)?;
        for (name, want) in &self.claims {
            if claims[name].as_str() != Some(want.as_str()) {
                return Err(VerifyError::SignatureInvalid);
            }
        }
        if let Some((claim, encoding)) = &self.body_hash {
            let stated =
                claims[claim].as_str().and_then(|s| decode(*encoding, s)).ok_or(VerifyError::SignatureInvalid)?;
            if !bool::from(Sha256::digest(req.body).as_slice().ct_eq(&stated)) {
                return Err(VerifyError::SignatureInvalid);
            }
        }
        if let Some(max_age) = tolerance.or(self.max_age) {
            let iat = claims["iat"].as_u64().ok_or(VerifyError::SignatureInvalid)?;
            let issued =
                UNIX_EPOCH.checked_add(Duration::from_secs(iat)).ok_or(VerifyError::TimestampOutOfTolerance)?;
            super::timestamp::within(issued, now, max_age)?;
        }
        Ok(())
    }
}

fn decode_json(part: &str) -> Result<Json, VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| VerifyError::SignatureInvalid)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::SignatureInvalid)
}

/// The key's type must match the algorithm: an HMAC is never computed with a public key.
fn signature_valid(alg: Alg, key: &Key, kid: Option<&str>, input: &[u8], signature: &[u8]) -> bool {
    match (alg, key) {
        (Alg::Hs256, Key::Bytes(secret)) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
        (Alg::Hs512, Key::Bytes(secret)) => {
            let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("any key length");
            mac.update(input);
            mac.verify_slice(signature).is_ok()
        }
        (Alg::Es256, Key::P256(public, key_id)) => {
            use p256::ecdsa::signature::Verifier;
            let kid_matches = match (kid, key_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            kid_matches && p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| public.verify(input, &s).is_ok())
        }
        _ => false,
    }
}
