//! A service builds the store on the `ConnectionManager` it already has:
//! the store uses that connection (no second client connection) and works
//! like a connected one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_driver::{BackendInfo, RedisSessionStore, SessionStore};
use authsession_tests::fixtures::{active, fresh_key_space, ts, user};
use authsession_tests::RedisServer;

#[tokio::test]
async fn a_store_on_the_services_own_connection_manager() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let keys = fresh_key_space("own-conn");
    let info = BackendInfo::redis("127.0.0.1".into(), server.port(), 0);
    let store = RedisSessionStore::on_connection(conn.clone(), info).with_key_space(keys);
    let s = active("own-1", "own-user", ts(5, 0));
    store.create(&s).await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    assert_eq!(
        store
            .count_active_by_user_id(&user("own-user"))
            .await
            .unwrap(),
        1
    );

    // The service's connection is the only client: the store opened none.
    let raw = server.raw().await;
    let clients: String = raw.query(redis::cmd("CLIENT").arg("LIST")).await;
    assert_eq!(clients.lines().count(), 2, "{clients}"); // the service's + this raw one
}
