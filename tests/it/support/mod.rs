//! Test support: start a gateway, consume what it publishes, send signed requests.

pub(crate) mod amqp;
pub(crate) mod http;
pub(crate) mod proxy;
pub(crate) mod sign;

use std::net::SocketAddr;
use std::path::PathBuf;

use hookgate::config;
use hookgate::config::interpolate::ProcessEnv;
use hookgate::gateway::{self, Running};
use tokio::net::TcpListener;

/// The broker tests use; override with `HOOKGATE_TEST_AMQP_URL`.
pub(crate) fn amqp_url() -> String {
    std::env::var("HOOKGATE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Sends a valid GitHub event (source `gh`, secret `gh-secret`) with a fresh id and asserts it is
/// the next message in `queue`. Since every 202 waits for the broker's confirm, anything published
/// before it would be in the queue first: this proves nothing else was published, without sleeping.
pub(crate) async fn assert_next_is_sentinel(gw: &Gateway, queue: &mut amqp::TestQueue) {
    let id = uuid::Uuid::new_v4().to_string();
    let body = br#"{"sentinel":true}"#;
    let reply = http::post(&gw.hook("gh"), &sign::github("gh-secret", &id, "sentinel", body), &body[..]).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let next = queue.next().await;
    assert_eq!(
        crate::contract::amqp_header(&next, "cloudEvents:id").as_deref(),
        Some(id.as_str()),
        "something else was published first: {:?}",
        String::from_utf8_lossy(&next.data)
    );
}

/// A unique name for this test's exchange.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// How to start a test gateway; `Default` is the local broker, waited for.
pub(crate) struct Options {
    /// Broker URL; default the local RabbitMQ. `None`: no broker section (spool only).
    pub(crate) broker: Option<String>,
    /// Spool directory; default none (no spool section).
    pub(crate) spool: Option<PathBuf>,
    /// Wait until the broker connection is up before returning.
    pub(crate) wait_connected: bool,
    /// Extra `limits:` entries, YAML flow-mapping content (`request_timeout: 1s`).
    pub(crate) limits: String,
    /// `state_dir`; default a fresh temporary directory.
    pub(crate) state_dir: Option<PathBuf>,
    /// Exchange name; default a fresh unique one.
    pub(crate) exchange: Option<String>,
    /// `broker.confirm_timeout`.
    pub(crate) confirm_timeout: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            broker: Some(amqp_url()),
            spool: None,
            wait_connected: true,
            limits: String::new(),
            state_dir: None,
            exchange: None,
            confirm_timeout: "5s".into(),
        }
    }
}

/// A running gateway.
pub(crate) struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// Its exchange.
    pub(crate) exchange: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub(crate) admin_base: String,
    /// Its state directory (secrets handed over in handshakes).
    pub(crate) state_dir: PathBuf,
    /// The running gateway; shut down when the `Gateway` is dropped or by [`Gateway::shutdown`].
    running: Option<Running>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::spawn(running.shutdown());
        }
    }
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
        Self::start_opts(sources, Options { broker: Some(broker_url.to_owned()), wait_connected, ..Options::default() })
            .await
    }

    /// Starts a gateway with every option.
    pub(crate) async fn start_opts(sources: &str, options: Options) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exchange = options.exchange.unwrap_or_else(|| unique("hookgate-test"));
        let state_dir = options.state_dir.unwrap_or_else(|| std::env::temp_dir().join(unique("hookgate-state")));
        let broker = match &options.broker {
            Some(url) => format!(
                "broker:\n  url: '{url}'\n  exchange: {exchange}\n  confirm_timeout: {}\n",
                options.confirm_timeout
            ),
            None => String::new(),
        };
        let spool = match &options.spool {
            Some(dir) => format!("spool:\n  dir: '{}'\n", dir.display()),
            None => String::new(),
        };
        let yaml = format!(
            "providers_dir: providers\nschemas_dir: schemas\nstate_dir: '{}'\nlimits: {{ {} }}\n{broker}{spool}sources:\n{sources}",
            state_dir.display(),
            options.limits,
        );
        let config = config::load_str(&yaml, &root.join("test.yaml"), &ProcessEnv).unwrap_or_else(|e| panic!("{e}"));
        let public = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let admin = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let base = format!("http://{}", public.local_addr().unwrap());
        let admin_base = format!("http://{}", admin.local_addr().unwrap());
        let running = gateway::start(&config, public, admin).unwrap_or_else(|e| panic!("{e}"));
        if options.wait_connected
            && let Some(publisher) = &running.publisher
        {
            assert!(
                publisher.wait_connected(std::time::Duration::from_secs(10)).await,
                "RabbitMQ not reachable at {:?}",
                options.broker
            );
        }
        Self { base, admin_base, exchange, state_dir, running: Some(running) }
    }

    /// Shuts the gateway down gracefully and waits for it.
    pub(crate) async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// The spool, if the gateway has one.
    pub(crate) fn spool(&self) -> Option<&std::sync::Arc<hookgate::spool::Spool>> {
        self.running.as_ref()?.spool.as_ref()
    }

    /// The URL of a source.
    pub(crate) fn hook(&self, source: &str) -> String {
        format!("{}/hooks/{source}", self.base)
    }
}
