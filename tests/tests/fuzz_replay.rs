//! Replays the committed fuzz corpus and every regression input through the
//! fuzz targets' own assertions (`authsession_fuzz_check`), on stable Rust:
//! this is how CI checks fuzz findings without nightly or cargo-fuzz.
//!
//! Inputs live in `fuzz/corpus/<target>/` (minimised with `cargo fuzz
//! cmin`) and `fuzz/regressions/<target>/` (one named file per crash ever
//! found, explained in `fuzz/regressions/README.md`). Files are read at run
//! time, so a new corpus or regression file needs no code change here. The
//! hand-made `transitions` seeds (`authsession_fuzz_check::transitions_seeds`)
//! are replayed too, whether or not a corpus minimisation kept them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use authsession_fuzz_check::{
    check_decode_record, check_encode_roundtrip, check_transitions, transitions_seeds,
};

/// A target's assertions over one raw input.
type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("decode_record", check_decode_record),
    ("encode_roundtrip", check_encode_roundtrip),
    ("transitions", check_transitions),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file directly in `dir`, sorted; an absent directory is empty.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file, naming the file if an assertion fails.
fn replay(check: Check, inputs: &[PathBuf]) {
    for path in inputs {
        let data = fs::read(path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!(
                "fuzz input {} fails its target's assertions (reproduce with \
                 `cargo +nightly fuzz run <target> {}` in fuzz/)",
                path.display(),
                path.display()
            );
        }
    }
}

#[test]
fn committed_corpus_passes() {
    for (target, check) in TARGETS {
        let inputs = files(&fuzz_dir().join("corpus").join(target));
        // An empty or missing corpus would make this test vacuous.
        assert!(
            inputs.len() >= 10,
            "fuzz/corpus/{target} holds only {} inputs",
            inputs.len()
        );
        replay(*check, &inputs);
    }
}

#[test]
fn regression_inputs_pass() {
    for (target, check) in TARGETS {
        replay(*check, &files(&fuzz_dir().join("regressions").join(target)));
    }
}

#[test]
fn hand_made_transitions_seeds_pass() {
    let seeds = transitions_seeds();
    assert!(seeds.len() >= 10, "only {} seeds", seeds.len());
    for (name, bytes) in seeds {
        if std::panic::catch_unwind(|| check_transitions(&bytes)).is_err() {
            panic!(
                "hand-made transitions seed {name} fails (write it out with \
                 `cargo run --example seeds -- DIR` in fuzz/check)"
            );
        }
    }
}

/// A failing input is reported, not swallowed by the replay loop.
#[test]
fn replay_reports_a_failing_input() {
    let inputs = files(&fuzz_dir().join("corpus").join("decode_record"));
    let first = inputs.first().expect("corpus is not empty").clone();
    let failing: Check = |_| panic!("assertion failed");
    let caught = std::panic::catch_unwind(|| replay(failing, &[first]));
    assert!(caught.is_err(), "a failing input went unnoticed");
}
