//! The path of a push: the hook spools it, the worker drains the spool, schedules each mirror and runs its
//! update; the drift scan (with what it keeps between runs) and fleet discovery find the work no hook
//! reported; what the worker trusts; mirrors left behind by repositories that went away.

pub mod drift;
pub mod fleet;
pub mod health;
pub mod hook;
pub mod orphaned;
pub mod registrations;
pub mod scan_cache;
pub mod schedule;
pub mod slots;
pub mod spool;
pub mod trust;
pub mod unrecorded;
pub mod worker;
