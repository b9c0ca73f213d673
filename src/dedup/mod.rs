//! Deduplication by (source, event id). An id counts as seen only once its first copy is durable:
//! the first request *claims* the id, and *commits* it after the broker confirmed, or *releases*
//! it on any failure so the provider's retry is not swallowed. A copy arriving while the first is
//! in flight waits for that outcome.

pub mod memory;

use futures_util::future::BoxFuture;

pub use memory::MemoryStore;

/// The key under which an id is remembered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    /// The key for `id` at `source`.
    pub fn new(source: &str, id: &str) -> Self {
        // NUL cannot appear in a source name, so distinct (source, id) pairs never collide.
        Self(format!("{source}\0{id}"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The result of a claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the id until it commits or releases it.
    Claimed,
    /// A copy was already accepted within the TTL.
    Duplicate,
}

/// A failure of the store itself (not a duplicate).
#[derive(Debug, thiserror::Error)]
#[error("dedup store unavailable: {0}")]
pub struct DedupError(pub String);

/// Where seen ids are kept.
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key`, waiting while another request holds it.
    fn claim<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<Claim, DedupError>>;
    /// Marks a claimed id as seen for the TTL.
    fn commit<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), DedupError>>;
    /// Gives a claimed id up; waiters may claim it. Must not block: it runs from `Drop`.
    fn release(&self, key: &DedupKey);
}
