//! Writes the hand-made `transitions` seeds (see `transitions_seeds`) into
//! a directory, one file per scenario, named after it:
//! `cargo run --example seeds -- ../corpus/transitions` (from `fuzz/check`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <dir>");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in authsession_fuzz_check::transitions_seeds() {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, bytes).unwrap();
        println!("{}", path.display());
    }
}
