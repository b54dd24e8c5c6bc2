//! The registry's knobs, taken from the command line.

use std::time::Duration;

use super::admission::Limits;
use super::history::Bounds;

/// The registry's knobs, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What `--history` keeps, and what of it memory holds.
    pub history: Bounds,
    pub room_ttl: Duration,
    /// How long an ended room's code stays reserved.
    pub ended_ttl: Duration,
    /// Codes in use below which new codes have four letters (see
    /// [`crate::model::RoomCode::length_for`]).
    pub short_codes: usize,
    /// How long a room or session nobody uses stays in memory (it stays
    /// stored).
    pub unload_after: Duration,
    /// How long a session is kept after its last use.
    pub session_ttl: Duration,
    pub limits: Limits,
}
