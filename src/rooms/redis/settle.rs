//! Calls whose outcome is unknown are settled before anyone is answered.
//! When Redis goes quiet after a script was sent (a timeout, a dropped
//! connection), the script may or may not have run. For a script that
//! gives the same outcome when run again with the same arguments (a join
//! by the same session id answers `same`; a leave finds them out), the
//! node runs it again until Redis gives a definite answer, so a join Redis
//! ran is answered as made, not refused while the name stays held by a
//! session nobody was given.

use std::future::Future;
use std::time::{Duration, Instant};

use super::client::RedisError;

/// How long an unsettled call is retried before the answer is 503.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// Between tries.
const PAUSE: Duration = Duration::from_millis(250);

/// Runs `call` until it gives a definite answer or [`SETTLE_WITHIN`]
/// passes; with the outcome, whether it took more than one try (an
/// outcome then may reflect the earlier try's work).
pub async fn settled<T, F, Fut>(call: F) -> Result<(T, bool), RedisError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    let deadline = Instant::now() + SETTLE_WITHIN;
    let mut retried = false;
    loop {
        match call().await {
            Err(RedisError::Unreachable) if Instant::now() < deadline => {
                retried = true;
                tokio::time::sleep(PAUSE).await;
            }
            outcome => return outcome.map(|outcome| (outcome, retried)),
        }
    }
}
