//! Sources at run time: a configured endpoint with its provider, decoded keys, limiter and
//! compiled schemas. Built once at start-up; shared read-only by every request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jsonschema::Validator;

use crate::config::file::{OnInvalid, RateLimitConfig};
use crate::providers::Provider;
use crate::providers::key::Key;

/// One webhook endpoint.
pub struct Source {
    /// URL segment and metric label.
    pub name: Arc<str>,
    /// How its requests are verified and identified.
    pub provider: Arc<Provider>,
    /// Decoded secrets, all tried.
    pub keys: Vec<Key>,
    /// Overrides the provider's timestamp tolerance.
    pub tolerance: Option<Duration>,
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
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Builds a governor limiter: `per_second` sustained, `burst` at once.
pub fn limiter(config: RateLimitConfig) -> Result<DefaultDirectRateLimiter, String> {
    let per_second = NonZeroU32::new(config.per_second).ok_or("per_second must be at least 1")?;
    let burst = NonZeroU32::new(config.burst).ok_or("burst must be at least 1")?;
    Ok(RateLimiter::direct(
        Quota::per_second(per_second).allow_burst(burst),
    ))
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
        self.by_type
            .get(event_type)
            .or(self.fallback.as_ref())
            .map(|v| v.as_ref())
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
        let by_name = in_order
            .iter()
            .map(|s| (s.name.to_string(), s.clone()))
            .collect();
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
