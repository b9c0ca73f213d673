//! Sources at run time: a configured endpoint with its provider, decoded keys, limiter and
//! compiled schemas. Built once at start-up; shared read-only by every request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderName;
use jsonschema::Validator;

use crate::config::file::{OnInvalid, RateLimitConfig};
use crate::config::secret::Secret;
use crate::providers::{Provider, ProviderKeys, VerifyContext};

/// One webhook endpoint.
pub struct Source {
    /// URL segment and metric label.
    pub name: Arc<str>,
    /// How its requests are verified and identified.
    pub provider: Arc<Provider>,
    /// Decoded secrets, all tried; replaced when a handshake hands over a secret.
    pub keys: RwLock<Arc<ProviderKeys>>,
    /// Overrides the provider's timestamp tolerance.
    pub tolerance: Option<Duration>,
    /// The endpoint's external URL as the provider calls it, without query (URL-signed schemes).
    pub public_url: Option<String>,
    /// The token a subscription handshake must present (Meta `hub.verify_token`).
    pub verify_token: Option<Secret>,
    /// Overrides a token scheme's header (Okta: the admin chooses it).
    pub token_header: Option<HeaderName>,
    /// Confirm subscriptions automatically (AWS SNS `SubscribeURL`).
    pub auto_confirm: bool,
    /// Values a verified request must carry (value → allowed values).
    pub require: Vec<(crate::providers::value::Value, Vec<String>)>,
    /// Where a secret handed over in a handshake is kept (`state_dir/<source>.secret`).
    pub secret_file: PathBuf,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Token bucket, when configured.
    pub limiter: Option<DefaultDirectRateLimiter>,
    /// Schemas by event type.
    pub schemas: Schemas,
    /// What a schema-invalid event gets.
    pub on_invalid: OnInvalid,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("provider", &self.provider.name)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The current keys.
    pub fn keys(&self) -> Arc<ProviderKeys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether identifying and admitting a verified request reads the JSON body.
    pub fn identity_reads_json(&self) -> bool {
        self.provider.identity_reads_json() || self.require.iter().any(|(value, _)| value.reads_json())
    }

    /// Whether a verified request carries every required value.
    pub fn allows(&self, req: &crate::providers::request::RequestView<'_>) -> bool {
        self.require
            .iter()
            .all(|(value, allowed)| value.get(req, None).is_some_and(|v| allowed.iter().any(|a| *a == v)))
    }

    /// The per-source settings verification reads.
    pub fn verify_context(&self) -> VerifyContext<'_> {
        VerifyContext { tolerance: self.tolerance, token_header: self.token_header.as_ref() }
    }

    /// Stores a secret handed over in a handshake (Asana `X-Hook-Secret`, Notion
    /// `verification_token`), on disk first so a restart keeps it. Only a source without a secret
    /// takes one; the same secret again is accepted, a different one refused, so nobody can
    /// replace the secret of a working source by posting a handshake.
    pub fn capture_secret(&self, secret: &str) -> Result<(), CaptureError> {
        let keys = self
            .provider
            .decode_secrets(&[Secret::new(secret)])
            .map_err(|e| CaptureError::Malformed(e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ")))?;
        let mut current = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if !current.is_empty() {
            let stored = std::fs::read_to_string(&self.secret_file).unwrap_or_default();
            // Constant time: the answer must not help anyone guess the stored secret.
            let same = {
                use sha2::{Digest, Sha256};
                use subtle::ConstantTimeEq;
                bool::from(Sha256::digest(stored.trim()).ct_eq(&Sha256::digest(secret)))
            };
            return if same { Ok(()) } else { Err(CaptureError::AlreadySet(self.secret_file.clone())) };
        }
        persist(&self.secret_file, secret).map_err(CaptureError::Io)?;
        *current = Arc::new(keys);
        Ok(())
    }
}

/// Why a handed-over secret was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The source already has a different secret.
    #[error("the source already has a secret; delete {} to accept a new one", .0.display())]
    AlreadySet(PathBuf),
    /// The value is not a key for this provider.
    #[error("the handed-over secret does not fit the provider: {0}")]
    Malformed(String),
    /// It could not be stored.
    #[error("cannot store the secret: {0}")]
    Io(#[source] std::io::Error),
}

/// Writes `secret` to `path` atomically (temporary file, fsync, rename), readable by the owner only.
fn persist(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Builds a governor limiter: `per_second` sustained, `burst` at once.
pub fn limiter(config: RateLimitConfig) -> Result<DefaultDirectRateLimiter, String> {
    let per_second = NonZeroU32::new(config.per_second).ok_or("per_second must be at least 1")?;
    let burst = NonZeroU32::new(config.burst).ok_or("burst must be at least 1")?;
    Ok(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)))
}

/// Compiled schemas of a source.
#[derive(Default)]
pub struct Schemas {
    /// Event type → validator.
    pub by_type: HashMap<String, Arc<Validator>>,
    /// Validator for every other type (`"*"`).
    pub fallback: Option<Arc<Validator>>,
}

impl Schemas {
    /// The validator for `event_type`, if any applies.
    pub fn for_type(&self, event_type: &str) -> Option<&Validator> {
        self.by_type.get(event_type).or(self.fallback.as_ref()).map(|v| v.as_ref())
    }
}

/// Every source, by name and in configuration order.
#[derive(Debug, Default, Clone)]
pub struct Sources(Arc<SourceTable>);

#[derive(Debug, Default)]
struct SourceTable {
    by_name: HashMap<String, Arc<Source>>,
    in_order: Vec<Arc<Source>>,
}

impl Sources {
    /// Wraps the built sources.
    pub fn new(sources: Vec<Source>) -> Self {
        let in_order: Vec<_> = sources.into_iter().map(Arc::new).collect();
        let by_name = in_order.iter().map(|s| (s.name.to_string(), s.clone())).collect();
        Self(Arc::new(SourceTable { by_name, in_order }))
    }

    /// The source named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.0.by_name.get(name)
    }

    /// All sources, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.0.in_order.iter()
    }
}
