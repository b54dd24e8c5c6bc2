//! The registry's knobs, taken from the command line.

use std::time::Duration;

use super::admission::Limits;

/// The registry's knobs, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Events kept per room.
    pub history: usize,
    pub room_ttl: Duration,
    /// How long a session is kept after its last use.
    pub session_ttl: Duration,
    pub limits: Limits,
}
