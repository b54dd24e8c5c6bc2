//! The registry's knobs, taken from the command line.

use std::time::Duration;

use super::admission::Limits;

/// The registry's knobs, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Events kept per room.
    pub history: usize,
    pub leave_grace: Duration,
    pub room_ttl: Duration,
    pub limits: Limits,
}
