//! hookgate: an inbound webhook gateway. Receives `POST /hooks/{source}`, verifies the
//! provider's signature, deduplicates, rate-limits, validates against JSON Schema and hands the
//! event durably to RabbitMQ before answering 202.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod error;
pub mod fetch;
pub mod gateway;
pub mod ingest;
pub mod layers;
pub mod providers;
pub mod server;
pub mod sink;
pub mod source;
pub mod spool;
pub mod telemetry;

pub use app::{AppState, app};
