//! The key functions' one shared body. Seven exports derive keys; they all
//! come here, so the order of checks (components, then prefix) and the
//! choice of layout are written once, and the core does the derivation.

use authsession_core::{prefixed_key, tagged_key, DeviceSessionId, Layout, UserId};
use wasm_bindgen::JsValue;

use crate::args::{device_session_id, text};
use crate::error::Failure;

/// The first component of a key: what its text must be.
#[derive(Clone, Copy)]
pub(crate) enum Part<'a> {
    /// A device session id (argument `id`).
    Id(&'a JsValue),
    /// A user id (argument `user` / `userId`).
    User(&'a JsValue),
}

/// The one body of every key function (seven exports share it, and take
/// their arguments by reference, which keeps the module small): the
/// components validated by the core first, then the prefix, then the core's
/// key derivation of `layout` — `prefix + b64url(first)`, or
/// `prefix + {b64url(first)}` followed by `b64url(id)` when given.
#[inline(never)]
pub(crate) fn derive_key(
    prefix: &JsValue,
    layout: Layout,
    first: Part<'_>,
    id: Option<&JsValue>,
) -> Result<String, JsValue> {
    Ok(key_text(prefix, layout, first, id)?)
}

fn key_text(
    prefix: &JsValue,
    layout: Layout,
    first: Part<'_>,
    id: Option<&JsValue>,
) -> Result<String, Failure> {
    let first = match first {
        Part::Id(id) => device_session_id(id)?.into_string(),
        Part::User(user) => UserId::parse(text(user, "user")?)?.into_string(),
    };
    let id = match id {
        Some(id) => Some(device_session_id(id)?),
        None => None,
    };
    let prefix = text(prefix, "prefix")?;
    Ok(match layout {
        Layout::Tagged => tagged_key(&prefix, &first, id.as_ref().map(DeviceSessionId::as_str))?,
        _ => prefixed_key(&prefix, &first)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tagged_key_fixtures_are_the_core_key_space_s() {
        use authsession_core::KeySpace;
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../test/tagged-keys.json")).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let text = |field: &str| case[field].as_str().unwrap();
            let keys = KeySpace::with_base_and_layout(text("base"), Layout::Tagged).unwrap();
            let user = UserId::parse(text("user_id")).unwrap();
            let id = DeviceSessionId::parse(text("device_session_id")).unwrap();
            assert_eq!(keys.record_key(&user, &id), text("session"));
            assert_eq!(keys.user_sessions_key(&user), text("user_sessions"));
            assert_eq!(
                keys.user_active_sessions_key(&user),
                text("user_active_sessions")
            );
            assert_eq!(keys.owner_key(&id).unwrap(), text("session_owner"));
            // The key functions' one prefix each, as the JS tests pass them.
            let [session, all, active] = keys.reference_prefixes();
            assert_eq!(
                tagged_key(session, user.as_str(), Some(id.as_str())).unwrap(),
                text("session")
            );
            assert_eq!(
                tagged_key(all, user.as_str(), None).unwrap(),
                text("user_sessions")
            );
            assert_eq!(
                tagged_key(active, user.as_str(), None).unwrap(),
                text("user_active_sessions")
            );
        }
    }
}
