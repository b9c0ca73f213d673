//! The per-route middleware, one file per concern, in request order:
//! [`observe`] → [`source`] → [`rate_limit`] → [`verify`] → [`handshake`] → [`dedup`] →
//! [`schema`] → `ingest`. Data flows down in request extensions: [`source::Inbound`] (the
//! buffered request) and [`verify::VerifiedEvent`] (which only the verifier can build).

pub mod dedup;
pub mod handshake;
pub mod observe;
pub mod rate_limit;
pub mod schema;
pub mod source;
pub mod verify;

#[cfg(test)]
pub(crate) mod test_support;
