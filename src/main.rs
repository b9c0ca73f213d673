//! The `hookgate` binary: parse arguments, load config, init telemetry, serve. Start-up errors
//! use `anyhow`; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookgate::config::{self, Config};
use hookgate::sink::amqp::AmqpPublisher;
use hookgate::{AppState, admin, server, telemetry};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Inbound webhook gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = "hookgate.yaml", env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
    /// Check the configuration, providers and schemas; exit non-zero on any problem.
    Check {
        /// Configuration file.
        #[arg(long, short, default_value = "hookgate.yaml", env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    telemetry::init_logs();
    match Cli::parse().command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            let sources: Vec<_> = config.sources.iter().map(|s| format!("{} ({})", s.name, s.provider.name)).collect();
            println!("{}: OK — {} source(s): {}", path.display(), sources.len(), sources.join(", "));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{}: {} problem(s) found", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = telemetry::metrics::install();
    let publisher = AmqpPublisher::start(config.broker.clone());
    let state = AppState::new(&config, publisher.clone());
    let public =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, sources = config.sources.iter().count(), "hookgate listening.");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_task = tokio::spawn(server::serve(
        admin,
        admin::admin_app(metrics, publisher),
        config.limits.header_read_timeout,
        stopped(stop_rx.clone()),
    ));
    let public_task =
        tokio::spawn(server::serve(public, hookgate::app(state), config.limits.header_read_timeout, stopped(stop_rx)));
    shutdown_signal().await;
    tracing::info!("Shutting down: no new requests; finishing those in flight.");
    let _ = stop_tx.send(true);
    let _ = public_task.await;
    let _ = admin_task.await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}
