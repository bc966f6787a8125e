//! Stripe, as both binaries use it: [`client`] (over async-stripe) creates customers, Checkout and portal sessions
//! and reads subscriptions; [`webhook`] verifies a webhook's signature over its raw body and reads the event's few
//! fields this service acts on.

pub mod client;
pub mod webhook;

pub use client::{CheckoutSession, StripeClient, StripeError};
