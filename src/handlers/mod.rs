//! One async function per endpoint: parsed input in, a response out. The
//! room registry does the work; nothing here holds a lock or a channel.
//! One file per part of the HTTP contract; what they share is in
//! `respond`.

mod amend;
mod home;
mod messages;
mod participants;
mod respond;
mod rooms;
mod service;

pub use amend::*;
pub use home::*;
pub use messages::*;
pub use participants::*;
pub use respond::Wants;
pub use rooms::*;
pub use service::*;
