//! The state handle every handler is given: the registry, the pages, and
//! the few settings handlers need. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use crate::pages::Pages;
use crate::rooms::Registry;
use crate::site::Origin;

#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    pub pages: Arc<Pages>,
    pub keep_alive: Duration,
    /// Always mark the session cookie Secure.
    pub secure_cookies: bool,
    /// This site's address, if `--public-url` gave it.
    pub public_url: Option<Origin>,
    /// How long the session cookie is kept (as long as the session).
    pub session_ttl: Duration,
}
