//! libFuzzer entry point of the `supercronic` target; the body (and what it asserts)
//! is `jobrun_fuzz::supercronic` in src/targets.rs, shared with the stable smoke test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jobrun_fuzz::supercronic(data));
