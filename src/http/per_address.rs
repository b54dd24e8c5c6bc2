//! Open connections per client address, capped: one address cannot hold
//! the server's sockets (`--max-connections-per-address`). Counted at
//! accept, by the peer's address (IPv6 by /64); a trusted proxy's
//! connections are not counted (they are everyone's), so behind one the
//! proxy must do this itself. The one lock of the connection layer; held
//! for a map update, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

use crate::rooms::admission::address_of;

/// The open connections of every address that has some.
#[derive(Clone)]
pub struct PerAddress {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it gives the count back.
pub struct Counted {
    counts: PerAddress,
    address: Option<IpAddr>,
}

impl PerAddress {
    pub fn new(cap: usize) -> PerAddress {
        PerAddress {
            cap,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `peer`, or `None` if its address holds
    /// the cap already.
    pub fn admit(&self, peer: IpAddr, trusted: &[IpNet]) -> Option<Counted> {
        if trusted.iter().any(|net| net.contains(&peer)) {
            return Some(Counted {
                counts: self.clone(),
                address: None,
            });
        }
        let address = address_of(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Counted {
            counts: self.clone(),
            address: Some(address),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let Some(address) = self.address else { return };
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}
