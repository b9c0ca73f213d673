//! The `hookgate` binary: parse arguments, load config, init telemetry, serve. Start-up errors
//! use `anyhow`; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookgate::config::{self, Config};
use hookgate::providers::Provider;
use hookgate::sink::amqp::AmqpPublisher;
use hookgate::{AppState, admin, cli, server, telemetry};
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
    /// List the providers hookgate verifies.
    Providers {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Directory of provider files.
        #[arg(long, default_value = "providers")]
        providers_dir: PathBuf,
    },
    /// Print the headers (or a curl command) a provider would send for a body.
    Sign {
        /// Provider name (file name in the providers directory).
        #[arg(long)]
        provider: String,
        /// The secret, as configured in the source.
        #[arg(long)]
        secret: Option<String>,
        /// For Ed25519/ECDSA schemes: the sender's private key (hex/base64 seed, or PEM).
        #[arg(long)]
        private_key: Option<String>,
        /// Body file (`-` for standard input); empty when omitted.
        #[arg(long)]
        body: Option<PathBuf>,
        /// The URL the provider calls (needed by URL-signed schemes and for --curl).
        #[arg(long)]
        url: Option<String>,
        /// Extra request header, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// Print a ready curl command instead of the headers.
        #[arg(long)]
        curl: bool,
        /// Directory of provider files.
        #[arg(long, default_value = "providers")]
        providers_dir: PathBuf,
    },
    /// Check a captured request (headers + body) and say exactly which step fails.
    Verify {
        /// Provider name.
        #[arg(long)]
        provider: String,
        /// A secret to try (repeatable).
        #[arg(long = "secret", required = true)]
        secrets: Vec<String>,
        /// Headers file: `Name: value` lines, optionally after a `POST /path?query HTTP/1.1` line.
        #[arg(long)]
        headers: Option<PathBuf>,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        header: Vec<String>,
        /// Body file (`-` for standard input).
        #[arg(long)]
        body: PathBuf,
        /// The URL the provider called (URL-signed schemes).
        #[arg(long)]
        url: Option<String>,
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// Verification time, Unix seconds (default: now).
        #[arg(long)]
        now: Option<u64>,
        /// Timestamp tolerance override, e.g. `10m`.
        #[arg(long)]
        tolerance: Option<String>,
        /// Directory of provider files.
        #[arg(long, default_value = "providers")]
        providers_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    telemetry::init_logs();
    match Cli::parse().command {
        Command::Check { config } => check(&config),
        Command::Providers { json, providers_dir } => report(cli::providers::run(&providers_dir, json)),
        Command::Sign { provider, secret, private_key, body, url, headers, method, curl, providers_dir } => {
            report(sign(&providers_dir, &provider, secret, private_key, body, url, &headers, &method, curl))
        }
        Command::Verify { provider, secrets, headers, header, body, url, method, now, tolerance, providers_dir } => {
            match verify(&providers_dir, &provider, &secrets, headers, header, &body, url, &method, now, tolerance) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => report(Err(e)),
            }
        }
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
            for source in config.sources.iter().filter(|s| s.provider.is_unauthenticated()) {
                eprintln!(
                    "warning: source `{}` uses provider `{}`, which has no authentication (verify: none): anyone who knows the URL can post events",
                    source.name, source.provider.name
                );
            }
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

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookgate: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)] // one per command-line option
fn sign(
    dir: &std::path::Path,
    provider: &str,
    secret: Option<String>,
    private_key: Option<String>,
    body: Option<PathBuf>,
    url: Option<String>,
    headers: &[String],
    method: &str,
    as_curl: bool,
) -> Result<(), String> {
    let provider = Provider::load(dir, provider).map_err(|e| e.to_string())?;
    let bytes = body.as_deref().map(cli::request::read_input).transpose()?.unwrap_or_default();
    let request = cli::request::OwnedRequest::new(method, url.as_deref(), headers, bytes)?;
    let signed =
        cli::sign::sign(&provider, cli::sign::SignRequest { secret, private_key, request, now: SystemTime::now() })?;
    let mut all: Vec<(String, String)> = headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    all.extend(signed);
    if as_curl {
        let url = url.ok_or("--curl needs --url")?;
        println!("{}", cli::sign::curl(&url, method, &all, body.as_deref().and_then(|b| b.to_str())));
    } else {
        for (name, value) in all {
            println!("{name}: {value}");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one per command-line option
fn verify(
    dir: &std::path::Path,
    provider: &str,
    secrets: &[String],
    headers_file: Option<PathBuf>,
    mut headers: Vec<String>,
    body: &std::path::Path,
    url: Option<String>,
    method: &str,
    now: Option<u64>,
    tolerance: Option<String>,
) -> Result<bool, String> {
    let provider = Provider::load(dir, provider).map_err(|e| e.to_string())?;
    if let Some(file) = headers_file {
        let text = String::from_utf8(cli::request::read_input(&file)?).map_err(|e| e.to_string())?;
        headers.splice(0..0, text.lines().map(str::to_owned));
    }
    let request = cli::request::OwnedRequest::new(method, url.as_deref(), &headers, cli::request::read_input(body)?)?;
    let now = now.map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    let tolerance = tolerance.as_deref().map(config::units::parse_duration).transpose()?;
    let report = cli::verify::verify(&provider, secrets, &request, now, tolerance)?;
    for step in &report.steps {
        println!("{step}");
    }
    Ok(report.verified)
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
