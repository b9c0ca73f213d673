//! Commands for users testing their setup: list providers, sign a request as a provider would,
//! and verify a captured request step by step. Output goes to the terminal only — never into an
//! HTTP response.

pub mod commands;
pub mod providers;
pub mod quarantine;
pub mod request;
pub mod sign;
pub mod spool;
pub mod verify;
