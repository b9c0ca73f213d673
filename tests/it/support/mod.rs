//! Test support: start a gateway, consume what it publishes, send signed requests.

pub(crate) mod amqp;
pub(crate) mod http;
pub(crate) mod sign;

use std::net::SocketAddr;
use std::path::PathBuf;

use hookgate::config::interpolate::ProcessEnv;
use hookgate::sink::amqp::AmqpPublisher;
use hookgate::{AppState, config, server};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The broker tests use; override with `HOOKGATE_TEST_AMQP_URL`.
pub(crate) fn amqp_url() -> String {
    std::env::var("HOOKGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A unique name for this test's exchange.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A running gateway.
pub(crate) struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Its exchange.
    pub(crate) exchange: String,
    /// Stops the server when dropped.
    _stop: oneshot::Sender<()>,
}

impl Gateway {
    /// Starts a gateway whose config has `sources` (YAML list items) and the local broker.
    pub(crate) async fn start(sources: &str) -> Self {
        Self::start_with(sources, &amqp_url(), true).await
    }

    /// As [`Gateway::start`], with extra `limits:` entries (YAML, one line).
    pub(crate) async fn start_with_limits(sources: &str, limits: &str) -> Self {
        Self::build(sources, &amqp_url(), true, limits).await
    }

    /// As [`Gateway::start`], with a chosen broker, optionally waiting for the connection.
    pub(crate) async fn start_with(sources: &str, broker_url: &str, wait_connected: bool) -> Self {
        Self::build(sources, broker_url, wait_connected, "").await
    }

    async fn build(sources: &str, broker_url: &str, wait_connected: bool, limits: &str) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exchange = unique("hookgate-test");
        let yaml = format!(
            "providers_dir: providers\nschemas_dir: schemas\nlimits: {{ {limits} }}\nbroker:\n  url: '{broker_url}'\n  exchange: {exchange}\n  confirm_timeout: 5s\nsources:\n{sources}"
        );
        let config = config::load_str(&yaml, &root.join("test.yaml"), &ProcessEnv)
            .unwrap_or_else(|e| panic!("{e}"));
        let publisher = AmqpPublisher::start(config.broker.clone());
        if wait_connected {
            assert!(
                publisher
                    .wait_connected(std::time::Duration::from_secs(10))
                    .await,
                "RabbitMQ not reachable at {broker_url}"
            );
        }
        let state = AppState::new(&config, publisher.clone());
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(
            listener,
            hookgate::app(state),
            config.limits.header_read_timeout,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            base,
            exchange,
            _stop: stop,
        }
    }

    /// The URL of a source.
    pub(crate) fn hook(&self, source: &str) -> String {
        format!("{}/hooks/{source}", self.base)
    }
}
