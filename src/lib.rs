//! # roomcast
//!
//! A real-time multi-room web chat: messages go up by HTTP POST and come
//! down by Server-Sent Events, one stream per client. No WebSockets.
//!
//! ## The path of a message
//!
//! 1. [`http`] reads the request's head and hands it to [`routes`] (a warp
//!    filter per endpoint), which parses it.
//! 2. [`handlers`] turns it into a call on the registry and a response.
//! 3. [`rooms`] admits it and gives it the room's next id under its one
//!    lock; its backend stores it (the local writer thread: SQLite by
//!    default, in one transaction with whatever else is queued; or Redis).
//! 4. Once stored, the room adds it to its recent history and sends it on
//!    its broadcast channel; only then is the post answered.
//! 5. [`stream`] writes it, as one SSE frame encoded once, to every stream.
//!
//! ## Layout
//!
//! The map of every file is ARCHITECTURE.md, at the top of the repository.
//! In short: [`config`] the flags, [`server`] the wiring, [`app`] the state
//! handle; [`http`] connections, [`routes`] and [`handlers`] the HTTP
//! contract, [`client`] who is asking, [`limits`] request sizes; [`model`],
//! [`body`], [`error`], [`session`] the words of the domain; [`rooms`] the
//! registry and its backends, [`store`] SQLite; [`stream`] the SSE body;
//! [`pages`], [`assets`] the web page; [`metrics`], [`shutdown`].

pub mod app;
pub mod assets;
pub mod body;
pub mod client;
pub mod code_set;
pub mod config;
pub mod cursor;
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
pub mod site;
pub mod store;
pub mod stream;

pub use config::Config;
pub use server::Server;
