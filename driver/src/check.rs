//! The result of [`SessionAdmin::check`](crate::SessionAdmin::check): the
//! core's report (its JSON shape is the CLI's output).

pub use authsession_core::audit::CheckReport;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use authsession_core::audit::{Problem, StrayReason};
    use authsession_core::KeySpace;

    use crate::{CheckMode, MemorySessionStore, SessionAdmin as _};

    #[tokio::test]
    async fn serializes_problems_with_what_was_repaired() {
        let keys = KeySpace::default();
        let store = MemorySessionStore::new(keys.clone());
        store.with_kv(|kv| {
            kv.index_add_raw("authsession:user_sessions:dTE", b"ghost".to_vec(), 1.0)
        });
        let report = store.check(CheckMode::Repair).await.unwrap();
        assert_eq!(
            report.repaired,
            [Problem::StrayIndexEntry {
                index_key: "authsession:user_sessions:dTE".into(),
                member: b"ghost".to_vec(),
                reason: StrayReason::NoRecord,
            }]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["repaired"], 1);
        assert_eq!(json["unrepaired"], serde_json::json!([]));
        assert_eq!(
            json["problems"],
            serde_json::json!([{
                "kind": "stray_index_entry",
                "key": "authsession:user_sessions:dTE",
                "message": "authsession:user_sessions:dTE: stray member \"ghost\": no record",
                "reason": "dangling_index_member",
                "repaired": true,
            }])
        );
        assert!(!report.is_clean());
        assert!(report.is_resolved());
    }
}
