//! Any bytes as a /proc/net/tcp table: no panic, whatever parses renders
//! back to the same socket, and the fast parser agrees with the reference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    testkit::fuzz::check_table(data);
});
