//! `worker`: parses settings, initialises logging, checks the database role, runs until a signal.

use clap::{Parser, Subcommand};
use worker::{Settings, Worker, shutdown_on_signals};

#[derive(Parser)]
#[command(version, about = "TestIO Hub sync worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker loop (the default).
    Run,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    entity::telemetry::init(cli.settings.log_format != "pretty");
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let worker = Worker::build(&cli.settings).await?;
            worker.run(shutdown_on_signals()?).await
        }
    }
}
