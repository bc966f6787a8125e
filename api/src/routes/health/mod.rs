//! Probes for orchestrators: `/livez` (the process is up) and `/readyz` (it can serve traffic).

pub mod livez;
pub mod readyz;
