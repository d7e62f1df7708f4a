//! `get` and `get_for_user` through the hot path: the owner remembered for
//! the id (tagged layout), then the core's `Get` as usual.

use authsession_core::op::Get;
use authsession_core::{DeviceSessionId, Session, UserId};

use crate::backend::Backend;
use crate::error::{Error, ErrorKind};
use crate::store::Store;

impl<B: Backend> Store<B> {
    /// `get(id)` (`user` `None`) or `get_for_user(user, id)`.
    pub(crate) async fn hot_get(
        &self,
        id: &DeviceSessionId,
        user: Option<&UserId>,
    ) -> Result<Session, Error> {
        let now = self.now();
        let op = match user {
            Some(user) => Get::for_user(&self.keys, self.policy, now, user.clone(), id.clone()),
            None => {
                let op = Get::new(&self.keys, self.policy, now, id.clone());
                match self.hot.known_owner(&self.keys, id) {
                    Some(owner) => op.with_known_owner(owner),
                    None => op,
                }
            }
        };
        let result = self.drive(op).await;
        match &result {
            Ok(session) => self.hot.saw(&self.keys, id, Some(session)),
            // Not found by id: the owner key is gone too (the core read it
            // after the miss), so is what was remembered. By user, the id may
            // be another user's: nothing learnt.
            Err(e) if e.kind() == ErrorKind::NotFound && user.is_none() => {
                self.hot.saw(&self.keys, id, None)
            }
            Err(_) => {}
        }
        result
    }
}
