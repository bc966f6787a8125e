//! Tests of the TestIO side: the simulator, the connection and sync-run endpoints, and the worker against the
//! simulator.

mod allowlist;
mod bootstrap;
mod connection;
mod crash;
mod fidelity;
mod metrics;
mod mirror;
mod mirror_paging;
mod plan_limits;
mod runs;
mod scale_out;
mod simulator;
