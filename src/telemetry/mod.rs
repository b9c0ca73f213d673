//! Logs (tracing; JSON when `HOOKGATE_LOG_FORMAT=json`) and metrics (Prometheus).

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// lapin logs returned messages, body included, at WARN: keep payloads out of the logs.
const DEFAULT_FILTER: &str = "info,lapin=error";

/// Installs the global log subscriber. `RUST_LOG` filters (default `info`).
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("HOOKGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Logs go to stderr, so command output (`spool tail`, `providers --json`) stays clean on stdout.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    let _ =
        if json { builder.json().flatten_event(true).with_current_span(true).try_init() } else { builder.try_init() };
}
