//! The sync's bookkeeping, as opposed to the mirrored data in [`crate::mirror`]: when each tenant syncs and which
//! worker holds it ([`schedule`]), the record of every run ([`runs`]), what could not be read ([`gaps`]) and how far
//! each product's history has been read ([`cursors`]).

pub mod cursors;
pub mod gaps;
pub mod runs;
pub mod schedule;

pub use cursors::{
    BackfillCursor, BackfillProgress, TenantVerification, Verification, backfill_cursor, save_verification,
    set_backfill_cursor, tenant_verification, verifications,
};
pub use gaps::{Gap, GapKey, GapKind, OpenGap, open_gap, open_gaps, resolve_gaps, resolve_stale_gaps};
