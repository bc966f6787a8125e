//! `stripe-sim`: the Stripe simulator as a standalone server for the demo. Checkout URLs serve a "pay" button; the
//! events it makes are delivered (signed) to `--webhook-url` as they happen. Serves until SIGINT or SIGTERM.

// The `tests` crate does not inherit the workspace lints (its test helpers may panic); this binary is not a test.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tests::stripe_sim::{SECRET_KEY, StripeSim, WEBHOOK_SECRET};

#[derive(Debug, Parser)]
#[command(
    name = "stripe-sim",
    about = "Serves a simulated Stripe API (customers, Checkout, portal, subscriptions, webhooks)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "STRIPE_SIM_BIND", default_value = "127.0.0.1:8091")]
    bind: SocketAddr,
    /// Where to deliver webhook events (the API's `/v1/webhooks/stripe`).
    #[arg(long, env = "STRIPE_SIM_WEBHOOK_URL", default_value = "http://127.0.0.1:8080/v1/webhooks/stripe")]
    webhook_url: String,
    /// The secret webhooks are signed with (the API's `STRIPE_WEBHOOK_SECRETS`).
    #[arg(long, env = "STRIPE_SIM_WEBHOOK_SECRET", default_value = WEBHOOK_SECRET)]
    webhook_secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = StripeSim::start_on(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    sim.set_webhook(&args.webhook_url, &args.webhook_secret);
    println!("stripe-sim serving {} (secret key {SECRET_KEY}), webhooks to {}", sim.base_url, args.webhook_url);
    let deliver = async {
        loop {
            for (event, status) in sim.deliver().await {
                println!("delivered {event}: {status}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("cannot listen for SIGINT")?,
        () = deliver => {}
    }
    sim.stop().await;
    Ok(())
}
