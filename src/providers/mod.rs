//! Providers as data: each `providers/NAME.yaml` is parsed into a [`spec::ProviderSpec`] and
//! compiled into a [`Provider`] — a verifier, id/type extraction rules and handshakes. No
//! provider has Rust code of its own; scheme families do.

pub mod field;
pub mod handshake;
pub mod hmac;
pub mod key;
pub mod signature;
pub mod spec;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::config::error::{ConfigError, syntax_error};
use crate::config::secret::Secret;
use field::{Field, RequestView};
use handshake::Handshake;
use key::Key;
use spec::{ProviderSpec, VerifySpec};

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

/// A compiled provider.
#[derive(Debug)]
pub struct Provider {
    /// File name without `.yaml`.
    pub name: String,
    /// Documentation link from the file.
    pub docs: Option<String>,
    verifier: Verifier,
    id: Vec<Field>,
    event_type: Vec<Field>,
    handshakes: Vec<Handshake>,
}

/// One variant per scheme family.
#[derive(Debug)]
enum Verifier {
    Hmac(hmac::HmacVerifier),
}

impl Provider {
    /// Reads and compiles `dir/NAME.yaml`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, ConfigError> {
        let path = dir.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(name, &text, path)
    }

    /// Parses and compiles provider YAML; `path` is for error messages.
    pub fn parse(name: &str, text: &str, path: PathBuf) -> Result<Self, ConfigError> {
        let spec: ProviderSpec =
            serde_yaml_ng::from_str(text).map_err(|e| syntax_error(path.clone(), &e))?;
        Self::from_spec(name, &spec).map_err(|(field, message)| ConfigError::Invalid {
            path,
            field,
            message,
        })
    }

    /// Compiles a parsed spec; errors are `(field, message)`.
    pub fn from_spec(name: &str, spec: &ProviderSpec) -> Result<Self, (String, String)> {
        let verifier = match &spec.verify {
            VerifySpec::Hmac(h) => Verifier::Hmac(hmac::HmacVerifier::from_spec(h)?),
        };
        let fields = |key: &str, list: Vec<String>| {
            list.iter()
                .map(|f| Field::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (key.to_owned(), e))
        };
        let handshakes = spec
            .handshakes
            .iter()
            .map(Handshake::from_spec)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            docs: spec.docs.clone(),
            verifier,
            id: fields("id", spec.id.to_vec())?,
            event_type: fields("event_type", spec.event_type.to_vec())?,
            handshakes,
        })
    }

    /// Turns a configured secret into key material for this provider's scheme.
    pub fn decode_secret(&self, secret: &Secret) -> Result<Key, String> {
        match &self.verifier {
            Verifier::Hmac(v) => v.decode_key(secret),
        }
    }

    /// The provider's default timestamp tolerance, if its scheme signs a timestamp.
    pub fn default_tolerance(&self) -> Option<Duration> {
        match &self.verifier {
            Verifier::Hmac(v) => v.default_tolerance(),
        }
    }

    /// Verifies the request against every key; `tolerance` overrides the provider's window.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        tolerance: Option<Duration>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        match &self.verifier {
            Verifier::Hmac(v) => v.verify(req.headers, req.body, keys, tolerance, now),
        }
    }

    /// The HMAC verifier, for signing tools and tests.
    pub fn hmac(&self) -> Option<&hmac::HmacVerifier> {
        match &self.verifier {
            Verifier::Hmac(v) => Some(v),
        }
    }

    /// The event id as the provider defines it, else `sha256:<hex of the body>`, so a
    /// redelivered identical request deduplicates.
    pub fn event_id(&self, req: &RequestView<'_>) -> String {
        first_field(&self.id, req)
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(req.body))))
    }

    /// The event type as the provider defines it, else `unknown`.
    pub fn event_type(&self, req: &RequestView<'_>) -> String {
        first_field(&self.event_type, req).unwrap_or_else(|| "unknown".to_owned())
    }

    /// The first handshake this request is, if any.
    pub fn handshake(&self, req: &RequestView<'_>) -> Option<&Handshake> {
        self.handshakes.iter().find(|h| h.matches(req))
    }
}

fn first_field(fields: &[Field], req: &RequestView<'_>) -> Option<String> {
    fields
        .iter()
        .find_map(|f| f.get(req).filter(|v| !v.is_empty()))
        .map(|v| v.into_owned())
}

#[cfg(test)]
mod tests;
