//! API tests: the real server on port 0, a real HTTP client, a real SSE
//! reader. One binary, one module per area.

mod helpers;
mod redis;

mod amend;
mod cluster;
mod connections;
mod durability;
mod errors;
mod gaps;
mod history;
mod home;
mod idempotency;
mod lifecycle;
mod limits;
mod messages;
mod metrics;
mod multiplexed;
mod participants;
mod presence;
mod search;
mod security;
mod streams;
mod tls;
mod typing;
