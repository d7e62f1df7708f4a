#![no_main]
//! See `authsession_fuzz_check::check_decode_record` for the input format and what is asserted.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authsession_fuzz_check::check_decode_record(data));
