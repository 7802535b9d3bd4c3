//! Vocabulary shared by every Renkei crate.
//!
//! Architecture invariant: this crate does no IO, reads no clock and never panics on input.
//! Everything here is a value or a pure function over values.

pub mod audit;
pub mod consent;
pub mod facility;
pub mod institution;
pub mod time;
pub mod user;

pub use audit::{AuditEvent, AuditOutcome, ChainedAuditEvent};
pub use facility::{FacilityCode, FacilityCodeError, FacilityType, OidRoot};
pub use time::{Clock, FixedClock, SystemClock, Timestamp};
pub use user::{LoginId, Profession, Role};
