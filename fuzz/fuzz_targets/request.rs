//! Any bytes arriving on a connection, as `direct` reads them: never a
//! panic; a request taken uses exactly its head and its Content-Length of
//! body and leaves the rest; anything not taken is left untouched for hyper.
#![no_main]

use bytes::BytesMut;
use http_body::Body;
use libfuzzer_sys::fuzz_target;
use roomcast::http::direct::{handover, take, Next};

fuzz_target!(|data: &[u8]| {
    let mut read = BytesMut::from(data);
    match take(&mut read) {
        Some(Next::Post { request, .. }) => {
            assert!(data.ends_with(&read), "the rest is what followed");
            let length: u64 = request.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(request.body().size_hint().exact(), Some(length));
            let taken = &data[..data.len() - read.len()];
            // With no body, what was taken ends where the head does (its
            // blank line; httparse also takes a bare LF as a line end).
            assert!(length > 0 || taken.ends_with(b"\n"));
        }
        Some(Next::Stream(request)) => {
            assert!(read.is_empty(), "nothing may follow a stream request");
            assert!(request.uri().path().ends_with("/events"));
        }
        Some(Next::Other) | None => {
            assert_eq!(&read[..], data, "left for hyper");
            // What is not taken is handed over whole, or refused, or waits
            // for more; never a panic.
            let _ = handover(&read);
        }
    }
});
