//! Any bytes as a sock_diag datagram: no panic in the message, attribute
//! and inet_diag_msg parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    testkit::fuzz::check_diag(data);
});
