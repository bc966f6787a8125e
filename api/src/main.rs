//! `api`: parses settings, initialises logging, builds the application, runs it.

use clap::{Parser, Subcommand};

use api::config::Settings;
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
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make a user a platform admin.
    GrantPlatformAdmin {
        #[arg(long)]
        email: String,
    },
    /// Take platform admin away from a user.
    RevokePlatformAdmin {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", api::openapi::spec_json()?);
            Ok(())
        }
        Command::Admin { action } => {
            common::telemetry::init(cli.settings.log_format);
            let (email, grant) = match action {
                AdminAction::GrantPlatformAdmin { email } => (email, true),
                AdminAction::RevokePlatformAdmin { email } => (email, false),
            };
            api::admin::set_platform_admin(&cli.settings, &email, grant).await
        }
        Command::Serve => {
            common::telemetry::init(cli.settings.log_format);
            if let Some(created) = api::bootstrap::run(&cli.settings).await? {
                api::bootstrap::print(&created, &cli.settings.public_url);
            }
            let app = Application::build(cli.settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
