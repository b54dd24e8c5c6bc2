//! # roomcast
//!
//! A real-time multi-room web chat: messages go up by HTTP POST and come
//! down by Server-Sent Events, one stream per client. No WebSockets.
//!
//! ## The path of a message
//!
//! 1. [`routes`] matches the request (a warp filter per endpoint) and parses it.
//! 2. [`handlers`] turns it into a call on the registry and a response.
//! 3. [`rooms`] gives it the room's next id and queues it for the writer
//!    thread, which stores it ([`store`]: SQLite by default) in one
//!    transaction with whatever else is queued.
//! 4. Once stored, [`rooms`] adds it to the room's recent history and sends
//!    it on the room's broadcast channel (the only place with a lock).
//! 5. [`stream`] writes it, as one SSE frame, to every open stream.
//!
//! ## Layout
//!
//! - [`config`]: the flags. [`app`]: wiring. [`server`]: connections, the
//!   request log, graceful shutdown; [`direct`]: streams and posts read and
//!   written on the socket itself (no hyper buffers or dispatch).
//! - [`model`]: `RoomCode`, `Name`, `Text`, `Event`, parsed at the edge.
//! - [`body`]: form or JSON request bodies. [`error`]: errors → statuses.
//! - [`session`]: the cookie. [`pages`]: handlebars templates. [`assets`]: CSS/JS.
//! - [`shutdown`]: the signal the server's background tasks wait on.
//! - [`metrics`]: counters for `GET /metrics`. [`limits`]: per-visitor buckets.
//! - [`cluster`]: with `--redis`, rooms kept in Redis for several nodes;
//!   the registry becomes this node's cache, fed by [`cluster::reader`].

pub mod app;
pub mod assets;
pub mod body;
pub mod client;
pub mod config;
pub mod error;
pub mod handlers;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod pages;
pub mod rooms;
pub mod routes;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod stream;

pub use config::Config;
pub use server::Server;
