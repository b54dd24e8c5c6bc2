//! Brings the names held in Redis up to this version's [`Name::key`]: a
//! name filed under an older key would not stop a lookalike of it (the
//! key once missed `AIice` for `Alice`). Run once per Redis, at connect,
//! before anything is served; `roomcast:names-key` says which version of
//! the key the names are filed under. Safe to run on several nodes at
//! once: each move is one script that checks before it moves.
//!
//! [`Name::key`]: crate::model::Name::key

use log::info;
use redis::{AsyncCommands, Script};

use super::client::Redis;
use crate::model::{Name, RoomCode, NAME_KEY_VERSION};

const VERSION_KEY: &str = "roomcast:names-key";

impl Redis {
    pub(super) async fn rekey_names(&self) -> Result<(), String> {
        let fail = |e: redis::RedisError| format!("bringing names up to date in Redis: {e}");
        let mut commands = self.inner.commands.clone();
        let version: Option<u32> = commands.get(VERSION_KEY).await.map_err(fail)?;
        if version.is_some_and(|v| v >= NAME_KEY_VERSION) {
            return Ok(());
        }
        let hashes: Vec<String> = {
            let mut found = commands
                .scan_match::<_, String>("roomcast:{*}:names")
                .await
                .map_err(fail)?;
            let mut hashes = Vec::new();
            while let Some(key) = found.next_item().await {
                hashes.push(key.map_err(fail)?);
            }
            hashes
        };
        let script = Script::new(include_str!("rekey.lua"));
        let mut moved = 0u64;
        for hash in &hashes {
            let Some(code) = hash
                .strip_prefix("roomcast:{")
                .and_then(|rest| rest.strip_suffix("}:names"))
                .and_then(|code| RoomCode::parse(code).ok())
            else {
                continue;
            };
            let held: Vec<(String, String)> = commands.hgetall(hash).await.map_err(fail)?;
            for (old, value) in held {
                let mut fields = value.splitn(3, '\t');
                let (Some(session), Some(_watch), Some(name)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                let Ok(name) = Name::parse(name) else {
                    continue;
                };
                let new = name.key().0;
                if new == old {
                    continue;
                }
                let done: u8 = script
                    .key(hash)
                    .key(format!("roomcast:session:{session}"))
                    .arg(&old)
                    .arg(&new)
                    .arg(code.as_str())
                    .invoke_async(&mut commands)
                    .await
                    .map_err(fail)?;
                moved += u64::from(done);
            }
        }
        let _: () = commands
            .set(VERSION_KEY, NAME_KEY_VERSION)
            .await
            .map_err(fail)?;
        if moved > 0 {
            info!("filed {moved} held names under this version's name key");
        }
        Ok(())
    }
}
