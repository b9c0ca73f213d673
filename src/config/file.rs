//! The shape of `hookgate.yaml`: plain data, checked by serde with `deny_unknown_fields`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secret::Secret;
use super::units::{ByteSize, HumanDuration};

/// The whole `hookgate.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Public webhook listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin listener: `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Directory of provider files, relative to the config file.
    #[serde(default = "default_providers_dir")]
    pub providers_dir: PathBuf,
    /// Directory of JSON Schemas, relative to the config file.
    #[serde(default = "default_schemas_dir")]
    pub schemas_dir: PathBuf,
    /// Where hookgate keeps state that must survive restarts (secrets handed over in
    /// handshakes), relative to the config file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Request bounds applied to every source unless a source overrides them.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The RabbitMQ broker events are handed to; without it (or with an empty `url`) events
    /// stay in the spool.
    #[serde(default)]
    pub broker: Option<BrokerConfig>,
    /// The local spool that keeps events while the broker is away.
    #[serde(default)]
    pub spool: Option<SpoolFileConfig>,
    /// Deduplication of event ids.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// The webhook endpoints, one per sender.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// Request bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted body; a source's `max_body` overrides it.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// Whole-request deadline, body read and broker hand-off included (answers 408).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Deadline for a client to send its request headers (slowloris guard).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// Requests processed at once; beyond it new requests get 503 at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body: default_max_body(),
            request_timeout: default_request_timeout(),
            header_read_timeout: default_header_read_timeout(),
            concurrency: default_concurrency(),
        }
    }
}

/// RabbitMQ.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: Secret,
    /// Durable topic exchange declared at start-up.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Routing-key template; placeholders `{source}`, `{provider}`, `{type}`.
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Longest wait for the broker's publisher confirm before answering 503.
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout: HumanDuration,
    /// Channels kept open for publishing; confirms are pipelined on each.
    #[serde(default = "default_channels")]
    pub channels: usize,
}

/// The spool section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolFileConfig {
    /// Directory of segment files, relative to the config file.
    pub dir: PathBuf,
    /// Largest total size of undelivered events; beyond it requests get 503.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: ByteSize,
    /// `fdatasync` before answering 202 (off trades crash safety for speed).
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// Size at which a segment file is closed and the next one started.
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
}

/// Deduplication.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Where seen ids are kept.
    #[serde(default)]
    pub store: DedupStoreKind,
    /// How long an id counts as seen after its first copy was accepted.
    #[serde(default = "default_dedup_ttl")]
    pub ttl: HumanDuration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { store: DedupStoreKind::default(), ttl: default_dedup_ttl() }
    }
}

/// The dedup store backends.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DedupStoreKind {
    /// In this process only.
    #[default]
    Memory,
}

/// One webhook endpoint: `POST /hooks/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// URL segment and metric label.
    pub name: String,
    /// Provider file name in `providers_dir`, without `.yaml`.
    pub provider: String,
    /// Signing secrets; any one verifies (rotation).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Per-source rate limit; none means unlimited.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Event type → schema path in `schemas_dir`; `"*"` for every other type.
    #[serde(default)]
    pub schemas: BTreeMap<String, PathBuf>,
    /// What to do with a schema-invalid event.
    #[serde(default)]
    pub on_invalid: OnInvalid,
    /// Overrides the provider's timestamp tolerance.
    #[serde(default)]
    pub tolerance: Option<HumanDuration>,
    /// Overrides `limits.max_body`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// The endpoint's external URL without query, exactly as configured at the provider
    /// (URL-signed schemes: Twilio, Square, Trello, HubSpot, Contentful).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The token a subscription handshake must present (Meta `hub.verify_token`).
    #[serde(default)]
    pub verify_token: Option<Secret>,
    /// Overrides the header of a token scheme (Okta lets the admin choose it).
    #[serde(default)]
    pub token_header: Option<String>,
    /// Confirm subscriptions by fetching the URL the provider sends (AWS SNS); otherwise the URL
    /// is logged for an operator.
    #[serde(default)]
    pub auto_confirm: bool,
    /// Values a verified request must carry: value expression → allowed values. A signature proves
    /// who sent a request, not that it is for you: AWS signs every account's SNS messages, so an
    /// SNS source pins its topics with `require: { "json:/TopicArn": [arn:aws:sns:…] }`.
    #[serde(default)]
    pub require: BTreeMap<String, Vec<String>>,
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// What a schema-invalid event gets.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// 422 `schema_invalid`.
    #[default]
    Reject,
    /// 202, and the event goes to the quarantine exchange with its rejection reason.
    Quarantine,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9091))
}

fn default_providers_dir() -> PathBuf {
    PathBuf::from("providers")
}

const fn default_spool_max_bytes() -> ByteSize {
    ByteSize(1 << 30)
}

const fn default_segment_size() -> ByteSize {
    ByteSize(64 << 20)
}

const fn default_true() -> bool {
    true
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}

fn default_schemas_dir() -> PathBuf {
    PathBuf::from("schemas")
}

const fn default_max_body() -> ByteSize {
    ByteSize(1 << 20)
}

const fn default_request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

const fn default_header_read_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

const fn default_concurrency() -> usize {
    1024
}

fn default_exchange() -> String {
    "hookgate".to_owned()
}

pub(crate) fn default_routing_key() -> String {
    "{source}.{type}".to_owned()
}

const fn default_confirm_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

const fn default_channels() -> usize {
    4
}

const fn default_dedup_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}
