//! `worker`: parses settings, initialises logging, checks the database role, then runs the sync loop (the default)
//! or one of the maintenance commands.

use clap::{Parser, Subcommand};
use entity::TenantId;
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
    /// Sync one tenant now and print how the run ended.
    Sync {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Read every product's whole history and every test's bugs (a reconcile).
        #[arg(long)]
        full: bool,
    },
    /// Re-read every billed tenant's subscription from Stripe and fix what drifted (each fix audited).
    BillingReconcile,
    /// Drop one tenant's mirrored data and sync it again in full.
    Reset {
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Confirm: the mirror is rebuilt from TestIO.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    common::telemetry::init(cli.settings.log_format);
    let shutdown = shutdown_on_signals()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => Worker::build(&cli.settings, shutdown).await?.run().await,
        Command::Sync { tenant, full } => {
            let worker = Worker::build(&cli.settings, shutdown).await?;
            let finished = worker.sync_tenant(TenantId(tenant), full).await?;
            print_run(&finished);
            Ok(())
        }
        Command::BillingReconcile => {
            let worker = Worker::build(&cli.settings, shutdown).await?;
            let done = worker.reconcile_billing().await?;
            println!("reconciled {} subscriptions: {} changed, {} failed", done.tenants, done.changed, done.failed);
            if done.failed > 0 {
                anyhow::bail!("{} subscriptions could not be read from Stripe", done.failed);
            }
            Ok(())
        }
        Command::Reset { tenant, yes } => {
            if !yes {
                anyhow::bail!("reset drops the tenant's mirrored TestIO data; add --yes to confirm");
            }
            let worker = Worker::build(&cli.settings, shutdown).await?;
            let (dropped, finished) = worker.reset_tenant(TenantId(tenant)).await?;
            println!("dropped {} products, {} tests, {} bugs", dropped.products, dropped.tests, dropped.bugs);
            print_run(&finished);
            Ok(())
        }
    }
}

fn print_run(finished: &worker::runner::Finished) {
    match &finished.run {
        Some(run) => println!(
            "run {} {:?}: {} requests, tests +{} ~{} -{}, bugs +{} ~{} -{}, gaps +{} -{}{}",
            run.id,
            run.status,
            run.requests,
            run.tests_new,
            run.tests_updated,
            run.tests_deleted,
            run.bugs_new,
            run.bugs_updated,
            run.bugs_deleted,
            run.gaps_opened,
            run.gaps_resolved,
            run.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
        ),
        None => println!("{}", finished.note),
    }
}
