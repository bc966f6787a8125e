//! `migration`: prepares the database (`bootstrap`, as a superuser) and applies the schema (`up`, `down`, `status`,
//! as the owner role).

use anyhow::Context;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait, bootstrap};
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "TestIO Hub database bootstrap and migrations")]
struct Cli {
    /// Owner role connection: migrations run as this role and it owns every object.
    #[arg(long, env = "MIGRATION_DATABASE_URL", hide_env_values = true,
          default_value = "postgres://testio_owner@127.0.0.1:5432/testio_hub", value_parser = secret)]
    migration_database_url: SecretString,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the owner role, the runtime roles and the database if missing (needs a superuser connection).
    Bootstrap {
        /// A superuser connection used only for this step.
        #[arg(long, env = "ADMIN_DATABASE_URL", hide_env_values = true,
              default_value = "postgres://postgres@127.0.0.1:5432/postgres", value_parser = secret)]
        admin_database_url: SecretString,
        /// The runtime connection the API and the worker will use; its role is created as a member of the runtime group.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true,
              default_value = "postgres://testio_app@127.0.0.1:5432/testio_hub", value_parser = secret)]
        database_url: SecretString,
    },
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Roll back the last N migrations (default 1), or all of them with --all.
    Down {
        #[arg(long, conflicts_with = "all")]
        steps: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As quiet as the services by default. `sea_orm_migration=info` keeps its "Applying migration .." lines, which
    // name migrations only; statements are never logged (see `bootstrap::connect`), whatever RUST_LOG says.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bootstrap { admin_database_url, database_url } => {
            let owner = bootstrap::Target::from_url(&cli.migration_database_url)?;
            let runtime = bootstrap::Target::from_url(&database_url)?;
            bootstrap::bootstrap(&admin_database_url, &owner, &runtime).await?;
            tracing::info!(owner = %owner.user, runtime = %runtime.user, database = %owner.database, "bootstrap complete");
        }
        command => {
            let db = bootstrap::connect(&cli.migration_database_url)
                .await
                .context("Failed to connect with MIGRATION_DATABASE_URL")?;
            match command {
                Command::Up { steps } => Migrator::up(&db, steps).await.context("Failed to apply migrations")?,
                Command::Down { steps, all } => {
                    let steps = if all { None } else { Some(steps.unwrap_or(1)) };
                    Migrator::down(&db, steps).await.context("Failed to roll back migrations")?
                }
                Command::Status => Migrator::status(&db).await.context("Failed to read migration status")?,
                Command::Bootstrap { .. } => unreachable!("handled above"),
            }
        }
    }
    Ok(())
}
