//! The HMAC scheme family: one engine for GitHub, Stripe, Slack, Standard Webhooks and every
//! provider that MACs a template of request parts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;
use super::field::header_name;
use super::key::{Key, decode_key};
use super::signature::SignatureFormat;
use super::spec::{HmacAlgorithm, HmacSpec, KeySpec, TimestampSpec, TimestampUnit};
use super::template::Template;
use crate::config::secret::Secret;

/// A compiled HMAC scheme.
#[derive(Debug, Clone)]
pub struct HmacVerifier {
    algorithm: HmacAlgorithm,
    key: KeySpec,
    signature: SignatureFormat,
    content: Template,
    timestamp: Option<Timestamp>,
}

/// Where the signed timestamp is and how far from now it may be.
#[derive(Debug, Clone)]
struct Timestamp {
    source: TimestampSource,
    unit: TimestampUnit,
    tolerance: Duration,
}

#[derive(Debug, Clone)]
enum TimestampSource {
    Header(http::HeaderName),
    Sig(String),
}

impl HmacVerifier {
    /// Compiles the spec; errors name the offending field.
    pub fn from_spec(spec: &HmacSpec) -> Result<Self, (String, String)> {
        let signature = SignatureFormat::from_spec(&spec.signature)
            .map_err(|e| ("verify.signature".into(), e))?;
        let content = Template::parse(&spec.signed_content, signature.has_params())
            .map_err(|e| ("verify.signed_content".into(), e))?;
        let timestamp = spec
            .timestamp
            .as_ref()
            .map(|t| Timestamp::from_spec(t, &signature))
            .transpose()
            .map_err(|e| ("verify.timestamp.from".into(), e))?;
        Ok(Self {
            algorithm: spec.algorithm,
            key: spec.key.clone(),
            signature,
            content,
            timestamp,
        })
    }

    /// Decodes a configured secret into this scheme's key bytes.
    pub fn decode_key(&self, secret: &Secret) -> Result<Key, String> {
        decode_key(&self.key, secret)
    }

    /// The provider's default replay window, if it signs a timestamp.
    pub fn default_tolerance(&self) -> Option<Duration> {
        self.timestamp.as_ref().map(|t| t.tolerance)
    }

    /// Checks that some signature in the request is the MAC of the signed content under some
    /// key, then that the signed timestamp is within `tolerance` (default: the provider's) of
    /// `now`. Signature first, so a forger learns nothing about the clock check.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        keys: &[Key],
        tolerance: Option<Duration>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let sigs = self.signature.parse(headers)?;
        let parts = self
            .content
            .resolve(headers, body, &sigs.params)
            .map_err(|_| VerifyError::SignatureMissing)?;
        let matched = keys.iter().any(|key| {
            let mac = self.mac(key.bytes(), &parts);
            // Every candidate is compared, so timing does not reveal which one matched.
            sigs.candidates.iter().fold(0u8, |acc, c| {
                acc | u8::from(bool::from(c.as_slice().ct_eq(&mac)))
            }) == 1
        });
        if !matched {
            return Err(VerifyError::SignatureInvalid);
        }
        if let Some(ts) = &self.timestamp {
            ts.check(
                headers,
                &sigs.params,
                tolerance.unwrap_or(ts.tolerance),
                now,
            )?;
        }
        Ok(())
    }

    fn mac(&self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self.algorithm {
            HmacAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
            HmacAlgorithm::Sha1 => run::<Hmac<Sha1>>(key, parts),
            HmacAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    /// Computes the signature this scheme expects, for tests and the `sign` tooling.
    pub fn sign(
        &self,
        key: &Key,
        headers: &HeaderMap,
        body: &[u8],
        params: &[(String, String)],
    ) -> Option<Vec<u8>> {
        let parts = self.content.resolve(headers, body, params).ok()?;
        Some(self.mac(key.bytes(), &parts))
    }
}

impl Timestamp {
    fn from_spec(spec: &TimestampSpec, signature: &SignatureFormat) -> Result<Self, String> {
        let source = if let Some(name) = spec.from.strip_prefix("header.") {
            TimestampSource::Header(header_name(name)?)
        } else if let Some(name) = spec.from.strip_prefix("sig.") {
            if !signature.has_params() {
                return Err(format!("`{}` needs a `format: kv` signature", spec.from));
            }
            TimestampSource::Sig(name.to_owned())
        } else {
            return Err(format!(
                "`{}` is not a timestamp source: write `header.NAME` or `sig.NAME`",
                spec.from
            ));
        };
        Ok(Self {
            source,
            unit: spec.unit,
            tolerance: spec.tolerance.0,
        })
    }

    fn check(
        &self,
        headers: &HeaderMap,
        params: &[(String, String)],
        tolerance: Duration,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let text = match &self.source {
            TimestampSource::Header(name) => headers.get(name).and_then(|v| v.to_str().ok()),
            TimestampSource::Sig(name) => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
        .ok_or(VerifyError::SignatureMissing)?;
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| VerifyError::SignatureInvalid)?;
        let since_epoch = match self.unit {
            TimestampUnit::S => Duration::from_secs(value),
            TimestampUnit::Ms => Duration::from_millis(value),
        };
        let signed_at = UNIX_EPOCH
            .checked_add(since_epoch)
            .ok_or(VerifyError::TimestampOutOfTolerance)?;
        let distance = now
            .duration_since(signed_at)
            .unwrap_or_else(|e| e.duration());
        if distance > tolerance {
            return Err(VerifyError::TimestampOutOfTolerance);
        }
        Ok(())
    }
}
