//! `api`: parses settings, initialises logging, builds the application, runs it.

use clap::{Parser, Subcommand};

use api::config::{LogFormat, Settings};
use api::startup::Application;

#[derive(Parser)]
#[command(version, about = "TestIO Hub REST API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the OpenAPI document to standard output.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", api::openapi::spec_json()?);
            Ok(())
        }
        Command::Serve => {
            entity::telemetry::init(cli.settings.log_format == LogFormat::Json);
            let app = Application::build(cli.settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
