//! What stored names decode to: an index member → the session id it
//! names, an owner key's value → the user it names. Stated once; every
//! operation and maintenance pass reads members and owners through these.

use crate::ids::{DeviceSessionId, UserId};
use crate::keys::KeySpace;
use crate::op::TransitionError;
use crate::plan::Member;

/// The session id an index member names, if it is one.
pub(crate) fn session_id(member: &[u8]) -> Option<DeviceSessionId> {
    std::str::from_utf8(member)
        .ok()
        .and_then(|text| DeviceSessionId::parse(text).ok())
}

/// The user id an owner key's value names, if it is one.
pub(crate) fn user_id(value: &[u8]) -> Option<UserId> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| UserId::parse(text).ok())
}

/// The id an index member names, or why it is not one.
pub(crate) fn member_id(
    index_key: &str,
    member: &[u8],
) -> Result<DeviceSessionId, TransitionError> {
    session_id(member).ok_or_else(|| TransitionError::InvalidIndexMember {
        index_key: index_key.to_owned(),
        member: String::from_utf8_lossy(member).into_owned(),
    })
}

/// The ids of `members` and the record keys to read for them.
pub(crate) fn ids_and_keys(
    keys: &KeySpace,
    user: &UserId,
    index_key: &str,
    members: &[Member],
) -> Result<(Vec<DeviceSessionId>, Vec<String>), TransitionError> {
    let ids = members
        .iter()
        .map(|m| member_id(index_key, m))
        .collect::<Result<Vec<_>, _>>()?;
    let record_keys = ids.iter().map(|id| keys.record_key(user, id)).collect();
    Ok((ids, record_keys))
}
