//! Arbitrary bytes, read as a webhook request, through the receiver's verification and parsing.
//! The format and the rules checked are in `src/lib.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    hubsync_fuzz::check(input);
});
