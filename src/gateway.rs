//! Running the gateway: open the spool, start the broker connection and the drainer, serve the
//! public and admin listeners, and shut down in order — stop accepting, finish requests in
//! flight, let the drainer finish its batch (bounded); whatever is unconfirmed stays spooled.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::sink::Publisher;
use crate::sink::amqp::AmqpPublisher;
use crate::sink::delivery::Delivery;
use crate::spool::{Spool, SpoolError, drain};
use crate::{AppState, admin, server, telemetry};

/// Longest wait for the drainer's last batch at shutdown.
const DRAIN_STOP: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The spool could not be opened.
    #[error("cannot open the spool: {0}")]
    Spool(#[from] SpoolError),
}

/// A started gateway.
pub struct Running {
    /// The broker connection, when a broker is configured.
    pub publisher: Option<Arc<AmqpPublisher>>,
    /// The spool, when one is configured.
    pub spool: Option<Arc<Spool>>,
    stop: watch::Sender<bool>,
    public: JoinHandle<()>,
    admin: JoinHandle<()>,
    drainer: Option<JoinHandle<()>>,
}

/// Runs until `shutdown` resolves, on the configured addresses.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let bind =
        |addr| async move { TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source }) };
    let running = start(&config, bind(config.listen).await?, bind(config.admin_listen).await?)?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// Starts serving on the given listeners.
pub fn start(config: &Config, public: TcpListener, admin: TcpListener) -> Result<Running, StartError> {
    let metrics = telemetry::metrics::install();
    let spool = match &config.spool {
        Some(spool_config) => {
            let (spool, recovery) = Spool::open(spool_config.clone())?;
            tracing::info!(
                dir = %spool_config.dir.display(),
                events = recovery.events,
                bytes = recovery.bytes,
                cut = recovery.cuts.len(),
                "Spool open."
            );
            Some(spool)
        }
        None => None,
    };
    let publisher = config.broker.clone().map(AmqpPublisher::start);
    let delivery = Delivery { publisher: publisher.clone().map(|p| p as Arc<dyn Publisher>), spool: spool.clone() };
    tracing::info!(
        listen = ?public.local_addr().ok(),
        admin = ?admin.local_addr().ok(),
        sources = config.sources.iter().count(),
        broker = config.broker.is_some(),
        spool = spool.is_some(),
        "hookgate listening."
    );
    let (stop, stop_rx) = watch::channel(false);
    let drainer = match (&spool, &publisher) {
        (Some(spool), Some(publisher)) => {
            Some(tokio::spawn(supervise_drainer(spool.clone(), publisher.clone(), stop_rx.clone())))
        }
        _ => None,
    };
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let header_timeout = config.limits.header_read_timeout;
    let admin = tokio::spawn(server::serve(
        admin,
        admin::admin_app(metrics, delivery.clone()),
        header_timeout,
        stopped(stop_rx.clone()),
    ));
    let state = AppState::new(config, delivery);
    let public = tokio::spawn(server::serve(public, crate::app(state), header_timeout, stopped(stop_rx)));
    Ok(Running { publisher, spool, stop, public, admin, drainer })
}

/// Runs the drainer, restarting it if it ever panics: a dead drainer would leave every later
/// event in the spool.
async fn supervise_drainer(spool: Arc<Spool>, publisher: Arc<AmqpPublisher>, stop: watch::Receiver<bool>) {
    loop {
        let run = tokio::spawn(drain::run(spool.clone(), publisher.clone() as Arc<dyn Publisher>, stop.clone()));
        match run.await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "The spool drainer crashed; restarting it.");
                tokio::time::sleep(crate::spool::RETRY).await;
            }
        }
    }
}

impl Running {
    /// Stops accepting, finishes requests in flight, lets the drainer finish its batch (bounded).
    pub async fn shutdown(self) {
        tracing::info!("Shutting down: no new requests; finishing those in flight.");
        let _ = self.stop.send(true);
        let _ = self.public.await;
        let _ = self.admin.await;
        if let Some(drainer) = self.drainer
            && tokio::time::timeout(DRAIN_STOP, drainer).await.is_err()
        {
            tracing::warn!("The drainer did not finish its batch in time; unconfirmed events stay in the spool.");
        }
        if let Some(spool) = &self.spool {
            let stats = spool.stats();
            tracing::info!(
                events = stats.events,
                bytes = stats.bytes,
                "Stopped; undelivered events stay in the spool."
            );
        }
    }
}
