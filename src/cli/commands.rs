//! The command line: argument definitions and the glue from each subcommand to the library.
//! `main` only parses and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config;
use crate::providers::Provider;
use crate::{cli, gateway};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Inbound webhook gateway")]
pub struct Cli {
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
    /// See and forward what the spool holds.
    Spool {
        /// What to do.
        #[command(subcommand)]
        action: SpoolAction,
        /// Configuration file.
        #[arg(long, short, default_value = "hookgate.yaml", env = "HOOKGATE_CONFIG", global = true)]
        config: PathBuf,
    },
    /// Work with quarantined (schema-invalid) events.
    Quarantine {
        /// What to do.
        #[command(subcommand)]
        action: QuarantineAction,
        /// Configuration file.
        #[arg(long, short, default_value = "hookgate.yaml", env = "HOOKGATE_CONFIG", global = true)]
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

#[derive(Subcommand)]
enum SpoolAction {
    /// Undelivered events, bytes, segments, oldest event.
    Stats,
    /// One JSON line per undelivered event: id, source, type, received_at, body.
    Tail {
        /// Keep printing new events.
        #[arg(long, short)]
        follow: bool,
    },
    /// Forward everything to the configured broker and exit (stop the gateway first).
    Drain,
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Re-validate quarantined events and re-publish those that now pass.
    Replay {
        /// Source name.
        #[arg(long)]
        source: String,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events received since this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many re-publishes per second, e.g. `50/s`.
        #[arg(long)]
        rate: Option<String>,
        /// Count what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            for source in config.sources.iter().filter(|s| s.provider.name == "aws-sns" && s.require.is_empty()) {
                eprintln!(
                    "warning: source `{}` accepts SNS messages from any AWS account's topic: pin yours with require: {{ \"json:/TopicArn\": [...] }}",
                    source.name
                );
            }
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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn load(path: &std::path::Path) -> Result<config::Config, String> {
    config::load(path).map_err(|e| format!("invalid configuration:\n{e}"))
}

fn spool(path: &std::path::Path, action: SpoolAction) -> Result<(), String> {
    let config = load(path)?;
    match action {
        SpoolAction::Stats => cli::spool::stats(&config),
        SpoolAction::Tail { follow } => runtime()?.block_on(cli::spool::tail(&config, follow)),
        SpoolAction::Drain => {
            let forwarded = runtime()?.block_on(cli::spool::drain(&config))?;
            println!("forwarded {forwarded} event(s)");
            Ok(())
        }
    }
}

fn replay(
    path: &std::path::Path,
    source: String,
    event_type: Option<String>,
    since: Option<String>,
    rate: Option<String>,
    dry_run: bool,
) -> Result<(), String> {
    use crate::providers::{spec::TimestampUnit, timestamp};
    let config = load(path)?;
    let since = since
        .map(|s| timestamp::parse(&s, TimestampUnit::Rfc3339).ok_or(format!("--since `{s}` is not an RFC 3339 time")))
        .transpose()?;
    let rate = rate
        .map(|r| r.trim_end_matches("/s").parse::<f64>().map_err(|_| format!("--rate `{r}`: write e.g. 50/s")))
        .transpose()?;
    let options = cli::quarantine::ReplayOptions { source, event_type, since, rate, dry_run };
    let report = runtime()?.block_on(cli::quarantine::replay(&config, &options))?;
    let verb = if dry_run { "would replay" } else { "replayed" };
    println!("{verb}: {}, still invalid: {}, not selected: {}", report.replayed, report.still_invalid, report.skipped);
    Ok(())
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

fn serve(path: &std::path::Path) -> Result<(), String> {
    let config = load(path)?;
    runtime()?.block_on(gateway::run(config, shutdown_signal())).map_err(|e| e.to_string())
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Spool { action, config } => report(spool(&config, action)),
        Command::Quarantine {
            action: QuarantineAction::Replay { source, event_type, since, rate, dry_run },
            config,
        } => report(replay(&config, source, event_type, since, rate, dry_run)),
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
        Command::Serve { config } => match serve(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
