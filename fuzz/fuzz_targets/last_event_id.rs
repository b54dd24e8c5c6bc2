//! Any Last-Event-ID header: a number or nothing, never a panic; and a
//! number written back reads as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(id) = roomcast::body::resume_point(data) {
        assert_eq!(
            roomcast::body::resume_point(id.to_string().as_bytes()),
            Some(id)
        );
    }
});
