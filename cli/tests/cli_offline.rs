//! The offline commands of the `authsession` binary (`decode`, `keys`),
//! driven through the built executable, including the golden-vector batch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod cli_support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cli_support::{run, run_with_stdin};
use serde_json::{json, Value};

fn vectors(name: &str) -> Vec<Value> {
    let path = format!("{}/../core/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    data["cases"].as_array().unwrap().clone()
}

fn batch_line(id: &Value, payload_b64: &Value) -> String {
    serde_json::to_string(&json!({"id": id, "payload_b64": payload_b64})).unwrap()
}

#[test]
fn batch_reencodes_every_valid_vector_byte_for_byte() {
    let cases = vectors("valid.json");
    assert_eq!(cases.len(), 53);
    let input: String = cases
        .iter()
        .map(|c| batch_line(&c["device_session_id"], &c["payload_b64"]) + "\n")
        .collect();
    let lines = run_with_stdin(&["decode", "--batch"], input.as_bytes()).json_lines();
    assert_eq!(lines.len(), cases.len());
    for (case, line) in cases.iter().zip(&lines) {
        let name = &case["name"];
        assert_eq!(line["ok"], true, "{name}: {line}");
        assert_eq!(line["reencoded_b64"], case["payload_b64"], "{name}");
        assert_eq!(line["session"], case["session"], "{name}");
    }
}

#[test]
fn batch_rejects_every_invalid_vector_with_a_kind() {
    let cases: Vec<Value> = vectors("invalid.json")
        .into_iter()
        // Its requested id is not UTF-8, which a JSON batch line cannot carry.
        .filter(|c| c["name"] != "id_mismatch_invalid_utf8_requested")
        .collect();
    assert!(cases.len() > 150, "{}", cases.len());
    let input: String = cases
        .iter()
        .map(|c| batch_line(&c["device_session_id"], &c["payload_b64"]) + "\n")
        .collect();
    let lines = run_with_stdin(&["decode", "--batch"], input.as_bytes()).json_lines();
    assert_eq!(lines.len(), cases.len());
    for (case, line) in cases.iter().zip(&lines) {
        let name = &case["name"];
        assert_eq!(line["ok"], false, "{name}: {line}");
        let kind = line["kind"].as_str().unwrap_or_default();
        assert!(!kind.is_empty(), "{name}: {line}");
        assert!(
            line["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}"
        );
        assert!(line.get("session").is_none(), "{name}");
    }
}

#[test]
fn batch_answers_every_line_in_order_and_never_aborts() {
    let valid = &vectors("valid.json")[0];
    let good = batch_line(&valid["device_session_id"], &valid["payload_b64"]);
    let input = [
        "not json".to_owned(),
        good.clone(),
        String::new(),
        r#"{"id":"dev-1"}"#.to_owned(),
        r#"{"id":"dev-1","payload_b64":"e30=","extra":1}"#.to_owned(),
        r#"{"id":"","payload_b64":"e30="}"#.to_owned(),
        r#"{"id":"dev-1","payload_b64":"not base64!"}"#.to_owned(),
        r#"{"id":"dev-1","payload_b64":"e30="}"#.to_owned(),
        // Another id than the record's.
        batch_line(&json!("dev-2"), &valid["payload_b64"]),
        good.clone() + "\r",
    ]
    .join("\n")
        + "\n";
    let mut bytes = input.into_bytes();
    // A line that is not UTF-8 at all.
    bytes.extend_from_slice(b"\xff\xfe\n");
    bytes.extend_from_slice(good.as_bytes()); // last line without newline
    let lines = run_with_stdin(&["decode", "--batch"], &bytes).json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l["ok"] == true {
                "ok"
            } else {
                l["kind"].as_str().unwrap()
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "invalid_batch_line",
            "ok",
            "invalid_batch_line",
            "invalid_batch_line",
            "invalid_batch_line",
            "invalid_id",
            "invalid_payload_base64",
            "missing_field",
            "id_mismatch",
            "ok",
            "invalid_batch_line",
            "ok",
        ]
    );
}

#[test]
fn batch_reads_a_file_argument() {
    let valid = &vectors("valid.json")[1];
    let dir = std::env::temp_dir().join(format!("authsession-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("batch.jsonl");
    std::fs::write(
        &file,
        batch_line(&valid["device_session_id"], &valid["payload_b64"]) + "\n",
    )
    .unwrap();
    let lines = run(&["decode", "--batch", file.to_str().unwrap()]).json_lines();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reencoded_b64"], valid["payload_b64"]);
}

#[test]
fn decode_one_record_from_stdin_and_file() {
    for case in vectors("valid.json").iter().take(5) {
        let payload = STANDARD
            .decode(case["payload_b64"].as_str().unwrap())
            .unwrap();
        let id = case["device_session_id"].as_str().unwrap();
        let session = run_with_stdin(&["decode", "--id", id], &payload).json();
        assert_eq!(session, case["session"], "{}", case["name"]);
    }
    let case = &vectors("valid.json")[0];
    let path = std::env::temp_dir().join(format!("authsession-rec-{}", std::process::id()));
    std::fs::write(&path, case["payload"].as_str().unwrap()).unwrap();
    let id = case["device_session_id"].as_str().unwrap();
    let session = run(&["decode", "--id", id, path.to_str().unwrap()]).json();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(session, case["session"]);
}

#[test]
fn decode_one_reports_the_error_kind_and_exits_non_zero() {
    for case in vectors("invalid.json").iter().take(40) {
        let Some(id) = case["device_session_id"]
            .as_str()
            .filter(|id| !id.is_empty())
        else {
            continue;
        };
        let payload = STANDARD
            .decode(case["payload_b64"].as_str().unwrap())
            .unwrap();
        let out = run_with_stdin(&["decode", "--id", id], &payload);
        assert_eq!(out.code, Some(1), "{}: {out:?}", case["name"]);
        assert!(out.stdout.is_empty(), "{}", case["name"]);
        assert!(out.stderr.contains("(kind: "), "{}: {out:?}", case["name"]);
    }
    let valid = &vectors("valid.json")[0];
    let out = run_with_stdin(
        &["decode", "--id", "dev-2"],
        valid["payload"].as_str().unwrap().as_bytes(),
    );
    out.assert_error("id_mismatch");
    run_with_stdin(&["decode", "--id", " dev-1"], b"{}").assert_error("invalid_id");
    run(&["decode", "--id", "dev-1", "/nonexistent/record"]).assert_error("io");
}

#[test]
fn keys_derive_the_reference_layout_under_any_prefix() {
    let keys = run(&["keys", "--id", "dev-1", "--user", "user-1"]).json();
    assert_eq!(
        keys,
        json!({
            "session_key": "authsession:session:ZGV2LTE",
            "user_sessions_key": "authsession:user_sessions:dXNlci0x",
            "user_active_sessions_key": "authsession:user_active_sessions:dXNlci0x",
        })
    );
    let keys = run(&["--prefix", "app:", "keys", "--user", "user-1"]).json();
    assert_eq!(
        keys,
        json!({
            "user_sessions_key": "app:user_sessions:dXNlci0x",
            "user_active_sessions_key": "app:user_active_sessions:dXNlci0x",
        })
    );
    // An empty base is allowed: the three suffixes keep the prefixes apart.
    let keys = run(&["--prefix", "", "keys", "--id", "dev-1"]).json();
    assert_eq!(keys, json!({"session_key": "session:ZGV2LTE"}));
    let keys = cli_support::cmd(&["keys", "--id", "dev-1"])
        .env("AUTHSESSION_PREFIX", "env:")
        .output()
        .unwrap();
    let keys: Value = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys, json!({"session_key": "env:session:ZGV2LTE"}));
    // Every valid vector's key components.
    for case in vectors("valid.json") {
        let keys = run(&[
            "keys",
            "--id",
            case["device_session_id"].as_str().unwrap(),
            "--user",
            case["session"]["user_id"].as_str().unwrap(),
        ])
        .json();
        let component = case["session_key_component"].as_str().unwrap();
        assert_eq!(
            keys["session_key"],
            format!("authsession:session:{component}")
        );
        let user = case["user_key_component"].as_str().unwrap();
        assert_eq!(
            keys["user_sessions_key"],
            format!("authsession:user_sessions:{user}")
        );
    }
}

#[test]
fn keys_reject_bad_input_with_a_kind() {
    run(&["keys", "--id", ""]).assert_error("invalid_id");
    run(&["keys", "--user", "a\u{7}b"]).assert_error("invalid_id");
    // Neither flag: a usage error from the parser (exit 2).
    assert_eq!(run(&["keys"]).code, Some(2));
}

/// The documented cap of one record / one batch line.
const MAX_INPUT: usize = 64 * 1024;

#[test]
fn an_over_long_line_is_invalid_input_and_the_batch_goes_on() {
    let valid = &vectors("valid.json")[0];
    let good = batch_line(&valid["device_session_id"], &valid["payload_b64"]);
    // Exactly at the cap still reaches the JSON parser; one byte more is
    // refused by size; then a line of megabytes, then a valid line.
    let at_cap = pad(&good, MAX_INPUT);
    let over_cap = pad(&good, MAX_INPUT + 1);
    let mut input = Vec::new();
    for line in [at_cap.as_bytes(), over_cap.as_bytes(), &[b'x'; 8 << 20]] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    let lines = run_with_stdin(&["decode", "--batch"], &input).json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(kinds, ["ok", "invalid_input", "invalid_input", "ok"]);
    assert!(lines[1]["error"].as_str().unwrap().contains("65536"));

    // One record: the same cap.
    let id = valid["device_session_id"].as_str().unwrap();
    let record = valid["payload"].as_str().unwrap();
    let padded = pad(record, MAX_INPUT + 1);
    run_with_stdin(&["decode", "--id", id], padded.as_bytes()).assert_error("invalid_input");
    let padded = pad(record, MAX_INPUT);
    run_with_stdin(&["decode", "--id", id], padded.as_bytes()).json();
}

/// `text` followed by spaces (JSON whitespace) up to `len` bytes.
fn pad(text: &str, len: usize) -> String {
    let mut padded = text.to_owned();
    padded.extend(std::iter::repeat_n(' ', len - text.len()));
    padded
}

/// `decode --batch < /dev/zero`: one endless line. It is answered
/// `invalid_input` at once, and reading on takes no more memory.
#[test]
#[cfg(target_os = "linux")]
fn an_endless_line_is_answered_at_once_in_bounded_memory() {
    use std::io::BufRead as _;
    let mut child = cli_support::cmd(&["decode", "--batch"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let line: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(line["kind"], "invalid_input", "{line}");
    // Wait (polling the kernel's counter) until it has read 256 MiB.
    let pid = child.id();
    let read = || -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    while read() < 256 << 20 {
        std::thread::yield_now();
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB");
}

/// A reader that goes away (`| head -1`) ends the command quietly: no
/// panic, nothing on stderr, the status a SIGPIPE'd tool has.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::{BufRead as _, Write as _};
    let valid = &vectors("valid.json")[0];
    let good = batch_line(&valid["device_session_id"], &valid["payload_b64"]) + "\n";
    let mut child = cli_support::cmd(&["decode", "--batch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // Endless input until the command stops reading.
        while input.write_all(good.as_bytes()).is_ok() {}
    });
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains(r#""ok":true"#), "{first}");
    drop(stdout); // `head -1` exits
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert_eq!(stderr, "");

    // One value to a stdout closed before it is written.
    let record = valid["payload"].as_str().unwrap().as_bytes();
    let id = valid["device_session_id"].as_str().unwrap();
    let mut child = cli_support::cmd(&["decode", "--id", id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    // Only now does the command get its input, and so write.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(record).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

/// An error for a stderr whose reader went away: the exit status still
/// says so, and nothing panics (a panic would exit 101).
#[test]
fn a_closed_stderr_leaves_the_exit_status_and_never_panics() {
    use std::io::Write as _;
    let mut child = cli_support::cmd(&["decode", "--id", "dev-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"not a record").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_are_one_line_with_their_kind_and_exit_2() {
    for args in [
        &["get"][..],
        &["--bogus", "get", "x"],
        &[],
        &["list", "u", "--limit", "abc"],
        &["revoke", "x", "--reason"],
    ] {
        let out = run(args);
        out.assert_error("usage");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    // Help and version are answers, not errors.
    for args in [&["--help"][..], &["-V"], &["decode", "--help"]] {
        let out = run(args);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    }
}

#[test]
fn every_error_message_is_one_line() {
    // A message carrying a line break (from the input) stays one line.
    let out = run_with_stdin(&["decode", "--id", "dev\n1"], b"{}");
    out.assert_error("invalid_id");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}
