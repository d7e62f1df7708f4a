//! An input out of sequence is a driver bug, never contention.

use super::*;

#[test]
fn an_input_out_of_sequence_is_a_bug_not_contention() {
    let keys = KeySpace::default();
    let mut op = List::new(&keys, Policy::default(), t(0, 0), user("user-1"));
    assert!(matches!(op.resume(Input::Start), Ok(Step::Read(_))));
    let error = op.resume(Input::Resumed).unwrap_err();
    assert_eq!(error, TransitionError::OutOfSequence { op: "list" });
    assert_eq!(error.kind(), "out_of_sequence");
    assert!(!error.is_corruption());
    assert_eq!(error.key(), None);
}
