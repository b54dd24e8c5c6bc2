//! The `roomcast` binary: flags, logging, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use log::warn;
use roomcast::{Config, Server};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let mut logger = pretty_env_logger::formatted_timed_builder();
    let filters = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    logger.parse_filters(&filters);
    logger.init();

    // Every stream holds a socket: allow as many as the hard limit permits.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::info!("open-file limit: {limit}"),
        Err(err) => warn!("could not raise the open-file limit: {err}"),
    }

    let server = match Server::open(&config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("roomcast: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("roomcast: cannot listen on {}: {err}", config.bind);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("roomcast listening on http://{addr}"),
        Err(err) => {
            eprintln!("roomcast: cannot read the bound address: {err}");
            return ExitCode::FAILURE;
        }
    }
    server.run(listener, stop_signal()).await;
    ExitCode::SUCCESS
}

/// SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                warn!("cannot listen for SIGTERM ({err}); only Ctrl-C stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
