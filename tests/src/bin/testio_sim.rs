//! `testio-sim`: the TestIO Customer API simulator as a standalone server, serving one generated account, for the
//! demo and for trying clients by hand. Prints the base URL and the token on one line, then serves until SIGINT or
//! SIGTERM. With `--evolve-every-secs`, the account changes on its own so that a demo shows new tests, status
//! changes and accepted bugs.

// The `tests` crate does not inherit the workspace lints (its test helpers may panic); this binary is not a test.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tests::testio_sim::{Account, Shape, Simulator};

#[derive(Debug, Parser)]
#[command(name = "testio-sim", about = "Serves a simulated TestIO Customer API v2 with one generated account")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TESTIO_SIM_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// The API token that reaches the account (`Authorization: Token <token>`).
    #[arg(long, env = "TESTIO_SIM_TOKEN", default_value = "demo-token")]
    token: String,
    /// Seed of the generated data: the same seed gives the same account.
    #[arg(long, env = "TESTIO_SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Products in the account.
    #[arg(long, env = "TESTIO_SIM_PRODUCTS", default_value_t = 3)]
    products: usize,
    /// Exploratory tests per product.
    #[arg(long, env = "TESTIO_SIM_TESTS_PER_PRODUCT", default_value_t = 200)]
    tests_per_product: usize,
    /// Bugs per test.
    #[arg(long, env = "TESTIO_SIM_BUGS_PER_TEST", default_value_t = 3)]
    bugs_per_test: usize,
    /// Every this many seconds add a test, advance a test's status and accept a bug; 0 = never.
    #[arg(long, env = "TESTIO_SIM_EVOLVE_EVERY_SECS", default_value_t = 0)]
    evolve_every_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape =
        Shape { products: args.products, tests_per_product: args.tests_per_product, bugs_per_test: args.bugs_per_test };
    let sim = Simulator::start_on(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    sim.add_account(&args.token, Account::generate(args.seed, shape));
    println!("testio-sim serving {} with token {}", sim.base_url, args.token);

    let outcome = tokio::select! {
        signal = shutdown_signal() => signal,
        () = evolve(&sim, &args) => Ok(()),
    };
    sim.stop().await;
    eprintln!("testio-sim stopped");
    outcome
}

/// Never returns when evolving is off, so that only a signal ends the server.
async fn evolve(sim: &Simulator, args: &Args) {
    if args.evolve_every_secs == 0 {
        return std::future::pending().await;
    }
    let period = Duration::from_secs(args.evolve_every_secs);
    // `interval` ticks at once; the first change should come one period after start, like the following ones.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    for step in 1u64.. {
        ticks.tick().await;
        // Derived from the seed so that a demo run can be replayed, but different at each step.
        let seed = args.seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(step);
        let mut evolution = None;
        sim.modify(&args.token, |account| evolution = Some(account.evolve(seed)));
        if let Some(evolution) = evolution {
            eprintln!("testio-sim step {step}: {evolution:?}");
        }
    }
}

#[cfg(unix)]
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot listen for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn shutdown_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")
}
