//! A random search on stable Rust: feeds a target's assertions random
//! inputs (deterministic xorshift bytes) and saves every failing input.
//!
//! `cargo run --release --example search -- <target> <inputs> [seed] [out-dir]`
//! (from `fuzz/check`); `search <target> <file>` replays one input,
//! `search <target> <dir>` every input in a directory, timed. No coverage feedback: libFuzzer finds more; this
//! is for a quick look without nightly, and for paths a fuzzer is slow to
//! reach by chance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map_or("transitions", String::as_str);
    let inputs: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let out = PathBuf::from(args.get(4).map_or("search-failures", String::as_str));
    let check: fn(&[u8]) = match target {
        "decode_record" => authsession_fuzz_check::check_decode_record,
        "encode_roundtrip" => authsession_fuzz_check::check_encode_roundtrip,
        "transitions" => authsession_fuzz_check::check_transitions,
        other => panic!("unknown target {other}"),
    };
    // `search <target> <dir>`: replay every file in it, timed.
    if let Some(dir) = args.get(2).filter(|a| std::path::Path::new(a).is_dir()) {
        let inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        let started = Instant::now();
        for data in &inputs {
            check(data);
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} inputs in {secs:.2} s ({:.0}/s)",
            inputs.len(),
            inputs.len() as f64 / secs
        );
        return;
    }
    // `search <target> <file>`: replay one input, with its panic message.
    if let Some(file) = args.get(2).filter(|a| std::path::Path::new(a).is_file()) {
        let data = std::fs::read(file).unwrap();
        if target == "transitions" {
            eprintln!("{}", authsession_fuzz_check::describe_transitions(&data));
        }
        check(&data);
        eprintln!("{file} passes");
        return;
    }
    panic::set_hook(Box::new(|_| {}));
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = Instant::now();
    let mut failures = 0;
    for n in 0..inputs {
        let len = 16 + usize::try_from(next() % 2048).unwrap();
        let data: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        if panic::catch_unwind(|| check(&data)).is_err() {
            failures += 1;
            std::fs::create_dir_all(&out).unwrap();
            let path = out.join(format!("{target}-{seed}-{n}"));
            std::fs::write(&path, &data).unwrap();
            eprintln!("failing input: {}", path.display());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{inputs} inputs in {secs:.1} s ({:.0}/s), {failures} failing",
        inputs as f64 / secs
    );
}
