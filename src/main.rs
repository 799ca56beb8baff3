//! The `conveyor` binary: parses the command line, sets up logging and signals, and
//! runs the chosen role.

use std::net::TcpListener;

use clap::{Parser, Subcommand};
use conveyor::{Config, Role};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Conveyor: job queues, workers and a scheduler behind one HTTP API.
///
/// Every setting is an environment variable; `--help` on a subcommand lists them with
/// their defaults.
#[derive(Debug, Parser)]
#[command(name = "conveyor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Api, workers and scheduler in one process, migrations applied (the default).
    All(RunArgs),
    /// The HTTP api only.
    Api(RunArgs),
    /// Workers only.
    Worker(RunArgs),
    /// The scheduler only.
    Scheduler(RunArgs),
    /// Applies database migrations, then exits.
    Migrate(RunArgs),
    /// Stand-ins for the upstream services (the unreliable work server), for demos.
    Sandbox(SandboxArgs),
}

#[derive(Debug, clap::Args)]
struct SandboxArgs {
    #[command(flatten)]
    config: sandbox::SandboxConfig,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: Config,
}

/// Parses `RunArgs` from the environment alone, for the default subcommand.
#[derive(Debug, Parser)]
struct EnvOnly {
    #[command(flatten)]
    args: RunArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn")),
        )
        .init();
    let command = Cli::parse()
        .command
        .unwrap_or_else(|| Command::All(EnvOnly::parse_from(["conveyor"]).args));
    let (role, args) = match command {
        Command::All(args) => (Role::All, args),
        Command::Api(args) => (Role::Api, args),
        Command::Worker(args) => (Role::Worker, args),
        Command::Scheduler(args) => (Role::Scheduler, args),
        Command::Sandbox(args) => {
            let listener = TcpListener::bind(&args.config.bind_addr)
                .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.config.bind_addr))?;
            tracing::info!(addr = %listener.local_addr()?, "sandbox serving /work");
            sandbox::serve(listener, args.config, shutdown_signal()).await?;
            return Ok(());
        }
        Command::Migrate(args) => {
            conveyor::migrate(&args.config).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
    };
    let config = args.config;
    let backends = conveyor::connect(&config, role == Role::All).await?;
    let listener = if matches!(role, Role::All | Role::Api) {
        let listener = TcpListener::bind(&config.api.bind_addr)
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.api.bind_addr))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            queue = backends.queue.backend_name(),
            "serving; the API explorer is at /docs"
        );
        Some(listener)
    } else {
        None
    };
    conveyor::run(role, config, backends, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "no SIGTERM handler; only SIGINT stops gracefully");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested: finishing in-flight work");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        // Two settings with one name would make every subcommand panic at start.
        Cli::command().debug_assert();
    }
}
