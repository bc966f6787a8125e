//! The tenant's TestIO side: its connection (`/v1/tenants/{tenant_id}/testio-connection`) and the runs of the sync
//! that mirrors its data (`/v1/tenants/{tenant_id}/sync-runs`).

pub mod connection;
pub mod sync_runs;
