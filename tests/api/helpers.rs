//! The test harness: the real server on 127.0.0.1:0 in this process, a real
//! HTTP client, a browser-like cookie holder, and a spec-conforming SSE
//! reader (lines end in CR, LF or CRLF; one space after the colon is cut).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{redirect, Client, Response, StatusCode};
use roomcast::{Config, Server};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types as rustls_pki;

/// Guards against a hang, never a measure of speed: a test that waits this
/// long has already failed.
pub const HANG: Duration = Duration::from_secs(10);

/// The watcher the helpers read a room as.
pub const READER: &str = "reader";

/// Polls `check` until it holds; panics with `what` after [`HANG`]. For
/// things that happen on the server's own clock (a leave, an expiry).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + HANG;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    /// The token of each (room, name) this app's scripts joined as; one
    /// map for every node on the same Redis, whose rooms they share.
    tokens: Tokens,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// With TLS: the certificate and key files, read again on restart.
    _certificate: Option<tempfile::TempDir>,
}

type Tokens = Arc<Mutex<HashMap<(String, String), String>>>;

/// A new map of tokens, or with `redis` the one its nodes share.
fn tokens_for(redis: Option<&str>) -> Tokens {
    static SHARED: LazyLock<Mutex<HashMap<String, Tokens>>> = LazyLock::new(Default::default);
    match redis {
        Some(url) => SHARED
            .lock()
            .unwrap()
            .entry(url.to_string())
            .or_default()
            .clone(),
        None => Tokens::default(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Starts a server with the defaults changed by `tweak` (short timers).
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    // Every test client comes from 127.0.0.1, so the per-visitor limits
    // are lifted unless a test sets its own.
    let mut config = Config {
        db: ":memory:".into(),
        post_burst: 1e9,
        post_rate: 1e9,
        room_burst: 1e9,
        room_rate: 1e9,
        join_burst: 1e9,
        join_rate: 1e9,
        max_streams_per_visitor: 100_000,
        max_connections_per_address: 100_000,
        ..Config::default()
    };
    tweak(&mut config);
    let listener = roomcast::http::listen("127.0.0.1:0".parse().unwrap()).expect("bind port 0");
    let client = client().redirect(redirect::Policy::none()).build().unwrap();
    let mut app = TestApp {
        addr: listener.local_addr().unwrap(),
        client,
        tokens: tokens_for(config.redis.as_deref()),
        config,
        stop: None,
        server: None,
        _certificate: None,
    };
    app.serve(listener).await;
    app
}

/// Starts a server that serves HTTPS with a self-signed certificate for
/// 127.0.0.1 made here, with the defaults changed by `tweak`; its client
/// trusts that certificate and offers HTTP/2 and HTTP/1.1.
pub async fn spawn_tls(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a self-signed certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut app = spawn_with(|config| {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        tweak(config);
    })
    .await;
    app.client = tls_client(made.cert.der().clone(), &[b"h2", b"http/1.1"]);
    app._certificate = Some(dir);
    app
}

/// A new client's builder. reqwest, built with rustls for the TLS tests,
/// wants a process-wide crypto provider even for plain HTTP: ring's, as
/// the server uses.
pub fn client() -> reqwest::ClientBuilder {
    // Err: a provider is installed already, which is all that is needed.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

/// A client that trusts only `root` and offers `alpn`.
pub fn tls_client(root: rustls_pki::CertificateDer<'static>, alpn: &[&[u8]]) -> Client {
    use tokio_rustls::rustls::{crypto::ring, ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    roots.add(root).unwrap();
    let mut tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    client()
        .use_preconfigured_tls(tls)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    async fn serve(&mut self, listener: TcpListener) {
        let server = Server::open(&self.config).await.expect("open the store");
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(async move {
            server
                .run(listener, async {
                    let _ = stopped.await;
                })
                .await;
        }));
    }

    /// Stops the server (if it still runs) and starts it again on the same
    /// address and store.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let listener = roomcast::http::listen(self.addr).expect("bind the same port again");
        self.serve(listener).await;
    }

    /// The flags it was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `http://127.0.0.1:PORT`, or `https://` when served with TLS.
    pub fn base(&self) -> String {
        let scheme = if self.config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// POST /rooms, returning the new code.
    pub async fn create_room(&self) -> String {
        let response = self.client.post(self.url("/rooms")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["code"].as_str().unwrap().to_string()
    }

    /// POST /rooms for a private room: its code and key.
    pub async fn create_private_room(&self) -> (String, String) {
        let request = self.client.post(self.url("/rooms"));
        let response = request
            .json(&serde_json::json!({"private": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let code = body["code"].as_str().unwrap().to_string();
        let invite = body["invite"].as_str().unwrap();
        let key = invite.strip_prefix(&format!("/join/{code}-")).unwrap();
        (code.clone(), key.to_string())
    }

    /// POST /rooms/CODE/join as a script; the whole reply.
    pub async fn join_as(&self, code: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/rooms/{code}/join")))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Joins `code` as `name` (a watcher if `watch`) and returns the token.
    pub async fn join(&self, code: &str, name: &str, watch: bool) -> String {
        let response = self
            .join_as(code, serde_json::json!({ "name": name, "watch": watch }))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "joining {code} as {name}"
        );
        let body: Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        let key = (code.to_string(), name.to_string());
        self.tokens.lock().unwrap().insert(key, token.clone());
        token
    }

    /// The token of `name` in `code`, joining as a member the first time.
    pub async fn token(&self, code: &str, name: &str) -> String {
        let key = (code.to_string(), name.to_string());
        let known = self.tokens.lock().unwrap().get(&key).cloned();
        match known {
            Some(token) => token,
            None => self.join(code, name, false).await,
        }
    }

    /// The token of the watcher the helpers read history and streams as
    /// (a watcher: it is never announced, so it changes no history).
    pub async fn reader(&self, code: &str) -> String {
        let key = (code.to_string(), READER.to_string());
        let known = self.tokens.lock().unwrap().get(&key).cloned();
        match known {
            Some(token) => token,
            None => self.join(code, READER, true).await,
        }
    }

    /// POSTs JSON to the room's messages as the `name` in it (joining as
    /// them first), or as "tester" if it names none.
    pub async fn post_json(&self, code: &str, body: Value) -> Response {
        self.post_json_with(code, body, &[]).await
    }

    /// [`TestApp::post_json`] with extra request headers.
    pub async fn post_json_with(
        &self,
        code: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let name = body["name"].as_str().unwrap_or("tester").to_string();
        let token = self.token(code, &name).await;
        let mut request = self
            .client
            .post(self.url(&format!("/rooms/{code}/messages")))
            .bearer_auth(token)
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Posts a message as a script would and checks it was stored.
    pub async fn say(&self, code: &str, name: &str, text: &str) -> Value {
        let response = self
            .post_json(code, serde_json::json!({ "name": name, "text": text }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// The room's whole history, read a page at a time as a client must
    /// (at most 500 events a read).
    pub async fn whole_history(&self, code: &str) -> Vec<Value> {
        let token = self.reader(code).await;
        whole_history(&self.client, &self.base(), code, &token).await
    }

    pub async fn history(&self, code: &str, query: &str) -> Vec<Value> {
        let url = self.url(&format!("/rooms/{code}/messages{query}"));
        let token = self.reader(code).await;
        let response = self
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Opens `path` (`/rooms/CODE/events?...`) as the helpers' watcher, or
    /// with `name=NAME` in the query as that member (joining as them).
    pub async fn stream(&self, path: &str) -> Sse {
        self.stream_with(path, HeaderMap::new()).await
    }

    /// [`TestApp::stream`] with `headers`; one with its own Authorization
    /// is sent as it is.
    pub async fn stream_with(&self, path: &str, mut headers: HeaderMap) -> Sse {
        let mut path = path.to_string();
        if !headers.contains_key("authorization") {
            let (plain, token) = self.as_participant(&path).await;
            path = plain;
            if let Some(token) = token {
                let value = format!("Bearer {token}").parse().unwrap();
                headers.insert("authorization", value);
            }
        }
        let response = self
            .client
            .get(self.url(&path))
            .headers(headers)
            .send()
            .await
            .unwrap();
        Sse::read(response)
    }

    /// `path` without any `name=` in its query, and the token to send
    /// with it: that name's, else the watcher's (for a room's path).
    async fn as_participant(&self, path: &str) -> (String, Option<String>) {
        let Some(rest) = path.strip_prefix("/rooms/") else {
            return (path.to_string(), None);
        };
        let code = rest
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        let (base, query) = path.split_once('?').unwrap_or((path, ""));
        let mut name = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("name=") {
                Some(n) => {
                    name = Some(n.to_string());
                    false
                }
                None => !pair.is_empty(),
            })
            .collect();
        let path = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        if code.len() != 4 {
            return (path, None);
        }
        let token = match name {
            Some(name) => self.token(&code, &name).await,
            None => self.reader(&code).await,
        };
        (path, Some(token))
    }

    /// A browser-like visitor: keeps the session cookie, follows nothing.
    pub fn browser(&self) -> Browser<'_> {
        Browser {
            app: self,
            cookie: None,
        }
    }

    /// Starts shutdown and waits for the server to finish.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(HANG, server)
                .await
                .expect("the server did not stop")
                .unwrap();
        }
    }
}

/// The real binary as a child process on a free port, for what only a
/// process can show (kill -9, exit codes); killed when dropped.
pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Process {
    /// Starts it with `args` after `--bind 127.0.0.1:0`.
    pub fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the roomcast binary");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("roomcast listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Process {
            base: base.to_string(),
            child,
        }
    }

    /// POST /rooms on this server; returns the code.
    pub async fn create_room(&self, client: &reqwest::Client) -> String {
        let url = format!("{}/rooms", self.base);
        let room: Value = client.post(url).send().await.unwrap().json().await.unwrap();
        room["code"].as_str().unwrap().to_string()
    }

    /// Joins `code` on this server as `name`; returns the token.
    pub async fn join(&self, client: &reqwest::Client, code: &str, name: &str) -> String {
        let url = format!("{}/rooms/{code}/join", self.base);
        let body = serde_json::json!({ "name": name });
        let response = client.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let joined: Value = response.json().await.unwrap();
        joined["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookie: Option<String>,
}

impl Browser<'_> {
    pub fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request.header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.with_cookie(self.app.client.get(self.app.url(path)))
            .send()
            .await
            .unwrap()
    }

    /// The room page's HTML as this visitor sees it.
    pub async fn room_page(&self, code: &str) -> String {
        let response = self.get(&format!("/rooms/{code}")).await;
        response.text().await.unwrap()
    }

    /// Submits a urlencoded form and keeps any cookie it sets.
    pub async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .with_cookie(self.app.client.post(self.app.url(path)))
            .form(form)
            .send()
            .await
            .unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            self.cookie = Some(pair.to_string());
        }
        response
    }

    /// Fills in the home form and lands in a room: returns its code.
    pub async fn enter(&mut self, name: &str, code: &str, action: &str) -> String {
        let response = self
            .submit("/", &[("name", name), ("code", code), ("action", action)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap();
        location.strip_prefix("/rooms/").unwrap().to_string()
    }

    /// The room's stream, opened the way the page opens it.
    pub async fn stream(&self, code: &str, since: u64) -> Sse {
        let request = self
            .app
            .client
            .get(self.app.url(&format!("/rooms/{code}/events?since={since}")));
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        Sse::read(request.send().await.unwrap())
    }
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", self.data))
    }
}

/// What the reader saw on the wire.
#[derive(Debug)]
pub enum Seen {
    Event(SseEvent),
    Comment,
    End,
}

/// An open SSE response, parsed as it arrives.
pub struct Sse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    seen: mpsc::UnboundedReceiver<Seen>,
    reader: JoinHandle<()>,
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Sse {
    fn read(response: Response) -> Sse {
        let status = response.status();
        let headers = response.headers().clone();
        let (tx, seen) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut parser = Parser::default();
            let mut body = response.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                for item in parser.feed(&chunk) {
                    let _ = tx.send(item);
                }
            }
            let _ = tx.send(Seen::End);
        });
        Sse {
            status,
            headers,
            seen,
            reader,
        }
    }

    /// The next event or end of stream, skipping keep-alive comments.
    pub async fn next_seen(&mut self) -> Option<SseEvent> {
        loop {
            let seen = tokio::time::timeout(HANG, self.seen.recv())
                .await
                .expect("no SSE event arrived")
                .unwrap_or(Seen::End);
            match seen {
                Seen::Event(event) => return Some(event),
                Seen::Comment => continue,
                Seen::End => return None,
            }
        }
    }

    pub async fn next(&mut self) -> SseEvent {
        self.next_seen().await.expect("the stream ended")
    }

    /// The next event that is not a `members` update.
    pub async fn next_history(&mut self) -> SseEvent {
        loop {
            let event = self.next().await;
            if event.event != "members" {
                return event;
            }
        }
    }

    /// The next message, past any join or leave.
    pub async fn next_message(&mut self) -> SseEvent {
        loop {
            let event = self.next_history().await;
            if event.event == "message" {
                return event;
            }
        }
    }

    /// The next `members` update, as a list of names.
    pub async fn next_members(&mut self) -> Vec<String> {
        let present = self.next_presence().await;
        present.into_iter().map(|(name, _)| name).collect()
    }

    /// The members of the next `members` frame, each with whether they
    /// are online.
    pub async fn next_presence(&mut self) -> Vec<(String, bool)> {
        loop {
            let event = self.next().await;
            if event.event == "members" {
                let members = event.json()["members"].as_array().unwrap().clone();
                let person = |p: &Value| {
                    let name = p["name"].as_str().unwrap().to_string();
                    (name, p["online"].as_bool().unwrap())
                };
                return members.iter().map(person).collect();
            }
        }
    }

    /// Waits for a keep-alive comment.
    pub async fn next_comment(&mut self) {
        loop {
            let seen = tokio::time::timeout(HANG, self.seen.recv())
                .await
                .expect("no keep-alive arrived");
            match seen {
                Some(Seen::Comment) => return,
                Some(Seen::Event(_)) => continue,
                Some(Seen::End) | None => panic!("the stream ended"),
            }
        }
    }

    /// Waits for the stream to end, returning the events before the end.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next_seen().await {
            events.push(event);
        }
        events
    }
}

/// The event-stream parsing rules of the HTML spec (section 9.2.6).
#[derive(Default)]
struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    event: String,
    data: Vec<String>,
    id: Option<String>,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Seen> {
        let mut out = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    let line = String::from_utf8(std::mem::take(&mut self.line))
                        .expect("the stream is UTF-8");
                    out.extend(self.line_done(&line));
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<Seen> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            let event = if event.is_empty() {
                "message".into()
            } else {
                event
            };
            return Some(Seen::Event(SseEvent {
                event,
                data,
                id: self.id.clone(),
            }));
        }
        if line.starts_with(':') {
            return Some(Seen::Comment);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[test]
fn parser_follows_the_spec_line_endings() {
    let mut parser = Parser::default();
    let mut seen = parser.feed(b"event: a\rdata: x\r\n\r\n: ping\n");
    seen.extend(parser.feed(b"id:7\ndata:one\ndata: two\r"));
    seen.extend(parser.feed(b"\n\r\n"));
    let events: Vec<_> = seen
        .into_iter()
        .filter_map(|s| match s {
            Seen::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].event.as_str(), events[0].data.as_str()),
        ("a", "x")
    );
    assert_eq!(events[1].data, "one\ntwo");
    assert_eq!(events[1].id.as_deref(), Some("7"));
}

/// `code`'s whole history from the server at `base`, read as `token` a
/// page at a time.
pub async fn whole_history(client: &Client, base: &str, code: &str, token: &str) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    loop {
        let since = events.last().map_or(0, |e| e["id"].as_u64().unwrap());
        let url = format!("{base}/rooms/{code}/messages?since={since}&limit=500");
        let response = client.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Vec<Value> = response.json().await.unwrap();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// The value of one series in a `/metrics` text.
pub fn metric_in(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The value of one series of `app`'s `/metrics` now.
pub async fn metric(app: &TestApp, series: &str) -> u64 {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    metric_in(&response.text().await.unwrap(), series)
}
