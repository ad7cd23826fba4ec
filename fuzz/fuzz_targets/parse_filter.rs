#![no_main]
//! Any bytes into the filter language and the address and port parsers:
//! no panic, no stack overflow (testkit::fuzz::check_filter).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    testkit::fuzz::check_filter(data);
});
