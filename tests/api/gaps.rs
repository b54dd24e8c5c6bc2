//! The gaps issue 18 found, tried again the way they were found: against
//! the real binary, as an outsider with curl would. Each must stay shut.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::Process;

async fn status(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn the_gaps_found_in_issue_18_stay_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let db = db.to_str().unwrap();
    let client = crate::helpers::client().build().unwrap();
    let mut server = Process::start(&["--db", db]);
    let base = server.base.clone();
    let code = server.create_room(&client).await;
    let alice = server.join(&client, &code, "alice").await;
    let said = client
        .post(format!("{base}/rooms/{code}/messages"))
        .bearer_auth(&alice)
        .form(&[("text", "for the room only")])
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), StatusCode::CREATED);

    // With no session: the whole history, and an invisible live feed.
    let history = client.get(format!("{base}/rooms/{code}/messages?since=0"));
    assert_eq!(status(history).await, StatusCode::UNAUTHORIZED);
    let feed = client.get(format!("{base}/rooms/{code}/events"));
    assert_eq!(status(feed).await, StatusCode::UNAUTHORIZED);
    let named_feed = client.get(format!("{base}/rooms/{code}/events?name=alice"));
    assert_eq!(status(named_feed).await, StatusCode::UNAUTHORIZED);

    // A forged sender with no session, and beside alice under lookalikes.
    let forged = client
        .post(format!("{base}/rooms/{code}/messages"))
        .form(&[("name", "alice"), ("text", "forged")]);
    assert_eq!(status(forged).await, StatusCode::UNAUTHORIZED);
    for lookalike in ["alice\u{200b}", "\u{430}lice", "Alice"] {
        let join = client
            .post(format!("{base}/rooms/{code}/join"))
            .json(&json!({ "name": lookalike }));
        let refused = status(join).await;
        assert!(
            refused == StatusCode::CONFLICT || refused == StatusCode::UNPROCESSABLE_ENTITY,
            "{lookalike:?}: {refused}"
        );
    }

    // Her tab closes: five seconds later (the old leave grace) the name is
    // still hers.
    let tab = client
        .get(format!("{base}/rooms/{code}/events"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(tab.status(), StatusCode::OK);
    drop(tab);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let taker = client
        .post(format!("{base}/rooms/{code}/join"))
        .json(&json!({"name": "alice"}));
    assert_eq!(status(taker).await, StatusCode::CONFLICT);

    // A second room in one browser does not replace the first.
    let no_redirects = crate::helpers::client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let other = server.create_room(&client).await;
    let mut cookie = None;
    for room in [&code, &other] {
        let mut request = no_redirects.post(format!("{base}/")).form(&[
            ("name", "bob"),
            ("code", room.as_str()),
            ("action", "join"),
        ]);
        if let Some(cookie) = &cookie {
            request = request.header("cookie", cookie);
        }
        let entered = request.send().await.unwrap();
        assert_eq!(entered.status(), StatusCode::SEE_OTHER);
        let set = entered.headers()["set-cookie"].to_str().unwrap();
        cookie = Some(set.split(';').next().unwrap().to_string());
    }
    let cookie = cookie.unwrap();
    for room in [&code, &other] {
        let page = no_redirects
            .get(format!("{base}/rooms/{room}"))
            .header("cookie", &cookie);
        assert_eq!(status(page).await, StatusCode::OK, "{room}");
    }

    // After a restart nobody types their name again.
    drop(server);
    server = Process::start(&["--db", db]);
    let base = server.base.clone();
    let history = client
        .get(format!("{base}/rooms/{code}/messages?since=0"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), StatusCode::OK);
    let history: Vec<Value> = history.json().await.unwrap();
    let texts: Vec<&str> = history.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(texts, ["for the room only"], "nothing forged was kept");
    let page = no_redirects
        .get(format!("{base}/rooms/{other}"))
        .header("cookie", &cookie);
    assert_eq!(status(page).await, StatusCode::OK);
}
