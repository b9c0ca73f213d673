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
    std::env::var("HOOKGATE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A unique name for this test's exchange.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// How to start a test gateway; `Default` is the local broker, waited for.
pub(crate) struct Options {
    /// Broker URL; default the local RabbitMQ.
    pub(crate) broker_url: String,
    /// Wait until the broker connection is up before returning.
    pub(crate) wait_connected: bool,
    /// Extra `limits:` entries, YAML flow-mapping content (`request_timeout: 1s`).
    pub(crate) limits: String,
    /// `state_dir`; default a fresh temporary directory.
    pub(crate) state_dir: Option<PathBuf>,
    /// Exchange name; default a fresh unique one.
    pub(crate) exchange: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self { broker_url: amqp_url(), wait_connected: true, limits: String::new(), state_dir: None, exchange: None }
    }
}

/// A running gateway.
pub(crate) struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Its exchange.
    pub(crate) exchange: String,
    /// Its state directory (secrets handed over in handshakes).
    pub(crate) state_dir: PathBuf,
    /// Stops the server when dropped.
    _stop: oneshot::Sender<()>,
}

impl Gateway {
    /// Starts a gateway whose config has `sources` (YAML list items) and the local broker.
    pub(crate) async fn start(sources: &str) -> Self {
        Self::start_opts(sources, Options::default()).await
    }

    /// As [`Gateway::start`], with extra `limits:` entries (YAML, one line).
    pub(crate) async fn start_with_limits(sources: &str, limits: &str) -> Self {
        Self::start_opts(sources, Options { limits: limits.to_owned(), ..Options::default() }).await
    }

    /// As [`Gateway::start`], with a chosen broker, optionally waiting for the connection.
    pub(crate) async fn start_with(sources: &str, broker_url: &str, wait_connected: bool) -> Self {
        Self::start_opts(sources, Options { broker_url: broker_url.to_owned(), wait_connected, ..Options::default() })
            .await
    }

    /// Starts a gateway with every option.
    pub(crate) async fn start_opts(sources: &str, options: Options) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exchange = options.exchange.unwrap_or_else(|| unique("hookgate-test"));
        let state_dir = options.state_dir.unwrap_or_else(|| std::env::temp_dir().join(unique("hookgate-state")));
        let yaml = format!(
            "providers_dir: providers\nschemas_dir: schemas\nstate_dir: '{}'\nlimits: {{ {} }}\nbroker:\n  url: '{}'\n  exchange: {exchange}\n  confirm_timeout: 5s\nsources:\n{sources}",
            state_dir.display(),
            options.limits,
            options.broker_url,
        );
        let config = config::load_str(&yaml, &root.join("test.yaml"), &ProcessEnv).unwrap_or_else(|e| panic!("{e}"));
        let publisher = AmqpPublisher::start(config.broker.clone());
        if options.wait_connected {
            assert!(
                publisher.wait_connected(std::time::Duration::from_secs(10)).await,
                "RabbitMQ not reachable at {}",
                options.broker_url
            );
        }
        let state = AppState::new(&config, publisher.clone());
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, hookgate::app(state), config.limits.header_read_timeout, async {
            let _ = stopped.await;
        }));
        Self { base, exchange, state_dir, _stop: stop }
    }

    /// The URL of a source.
    pub(crate) fn hook(&self, source: &str) -> String {
        format!("{}/hooks/{source}", self.base)
    }
}
