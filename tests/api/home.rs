//! The home form, sessions and the room page.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn home_shows_the_form_and_prefills_the_invite_code() {
    let app = spawn_app().await;
    let page = app.browser().get("/?code=WXYZ").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="name""#));
    assert!(html.contains(r#"<button name="action" value="create""#));
    assert!(html.contains(r#"<button name="action" value="join""#));
    assert!(html.contains(r#"name="code" value="WXYZ""#));
    // Enter submits with the first button: with a code given, that is join.
    let join = html.find(r#"value="join""#).unwrap();
    let create = html.find(r#"value="create""#).unwrap();
    assert!(join < create, "join comes first on an invite link");

    let html = app.browser().get("/").await.text().await.unwrap();
    let join = html.find(r#"value="join""#).unwrap();
    let create = html.find(r#"value="create""#).unwrap();
    assert!(create < join, "create comes first without a code");
}

#[tokio::test]
async fn create_redirects_to_a_new_room_with_a_safe_session_cookie() {
    let app = spawn_app().await;
    let mut alice = app.browser();
    let response = alice
        .submit(
            "/",
            &[("name", "alice"), ("code", ""), ("action", "create")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap();
    let code = location.strip_prefix("/rooms/").unwrap();
    assert_eq!(code.len(), 4);
    assert!(code.bytes().all(|b| b.is_ascii_uppercase()));
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("roomcast_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(cookie.contains("Path=/"));

    let page = alice.get(location).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(r#"data-room="{code}""#)));
    assert!(html.contains(r#"data-me="alice""#));
    // Handlebars escapes `=` in values; a browser reads `&#x3D;` as `=`.
    assert!(html.contains(&format!("/?code&#x3D;{code}")), "invite link");
    assert!(html.contains(&format!(r#"action="/rooms/{code}/messages""#)));
    assert!(html.contains(r#"name="text""#));
}

#[tokio::test]
async fn join_accepts_the_code_in_any_case() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let mut bob = app.browser();
    let joined = bob.enter("bob", &code.to_lowercase(), "join").await;
    assert_eq!(joined, code);
    assert_eq!(
        bob.get(&format!("/rooms/{code}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_name_is_prefilled_from_the_session_and_rejoining_keeps_the_cookie() {
    let app = spawn_app().await;
    let mut carol = app.browser();
    carol.enter("carol", "", "create").await;
    let first_cookie = carol.cookie.clone();
    let html = carol.get("/").await.text().await.unwrap();
    assert!(html.contains(r#"name="name" value="carol""#));

    let other = app.create_room().await;
    assert_eq!(carol.enter("carol2", &other, "join").await, other);
    assert_eq!(carol.cookie, first_cookie, "the same session is updated");
    let html = carol
        .get(&format!("/rooms/{other}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"data-me="carol2""#));
}

#[tokio::test]
async fn form_errors_are_422_with_a_clear_message_and_the_input_kept() {
    let app = spawn_app().await;
    let long_name = "d".repeat(33);
    // The last of each: whether the code is what has to be fixed.
    let cases = [
        (("", "ABCD", "join"), "Please enter a name.", false),
        (("   ", "", "create"), "Please enter a name.", false),
        (("dave", "", "join"), "Please enter a room code.", true),
        (("dave", "ZZZZ", "join"), "Room ZZZZ does not exist.", true),
        (
            ("dave", "zz1", "join"),
            "Room codes are 4 or 5 letters",
            true,
        ),
        (
            (long_name.as_str(), "", "create"),
            "at most 32 characters",
            false,
        ),
    ];
    for ((name, code, action), message, code_error) in cases {
        let mut visitor = app.browser();
        let response = visitor
            .submit("/", &[("name", name), ("code", code), ("action", action)])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?} {code:?}"
        );
        assert!(response.headers().get("set-cookie").is_none());
        let html = response.text().await.unwrap();
        assert!(
            html.contains(message),
            "{message:?} missing for {name:?} {code:?}"
        );
        assert!(
            html.contains(&format!(r#"name="name" value="{name}""#)),
            "name kept"
        );
        assert!(
            html.contains(&format!(r#"name="code" value="{code}""#)),
            "code kept"
        );
        // Focus, and the main button, fit what is to be done next: fix the
        // code and join, or fix the name.
        let code_input = html.split(r#"id="code""#).nth(1).unwrap();
        let code_input = &code_input[..code_input.find('>').unwrap()];
        let name_input = html.split(r#"id="name""#).nth(1).unwrap();
        let name_input = &name_input[..name_input.find('>').unwrap()];
        assert_eq!(code_input.contains("autofocus"), code_error, "{code_input}");
        assert_eq!(code_input.contains(r#"aria-invalid="true""#), code_error);
        assert_eq!(
            name_input.contains("autofocus"),
            !code_error,
            "{name_input}"
        );
        if code_error {
            assert!(
                html.contains(r#"value="join" class="primary">Join room</button>"#),
                "the main button joins the code typed next"
            );
        }
    }
}

#[tokio::test]
async fn the_room_page_needs_a_session_for_that_room() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let stranger = app.browser();
    let response = stranger.get(&format!("/rooms/{code}")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        format!("/?code={code}").as_str()
    );

    let mut elsewhere = app.browser();
    elsewhere.enter("erin", "", "create").await;
    let response = elsewhere.get(&format!("/rooms/{code}")).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "a session for another room"
    );
}

#[tokio::test]
async fn an_unknown_room_is_a_404_page_with_a_way_home() {
    let app = spawn_app().await;
    let response = app.browser().get("/rooms/QQQQ").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.unwrap();
    assert!(html.contains("Room QQQQ does not exist."));
    assert!(html.contains(r#"href="/""#));
}

#[tokio::test]
async fn the_room_page_escapes_what_people_typed() {
    let app = spawn_app().await;
    let mut frank = app.browser();
    let code = frank.enter("<i>frank</i>", "", "create").await;
    app.say(
        &code,
        "<b>mallory</b>",
        "<script>alert('x')</script> & <img src=x onerror=alert(1)>",
    )
    .await;
    let html = frank.room_page(&code).await;
    assert!(html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img"));
    assert!(html.contains("&lt;b&gt;mallory&lt;/b&gt;"));
    assert!(html.contains("&lt;i&gt;frank&lt;/i&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<b>mallory"));
    assert!(!html.contains("<img src=x"));
}

#[tokio::test]
async fn assets_are_served_with_their_types() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/assets/style.css", "text/css"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    let first = app
        .client
        .get(app.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .client
        .get(app.url("/assets/app.js"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
    let missing = app
        .client
        .get(app.url("/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_name_held_by_a_participant_cannot_be_taken_by_another_session() {
    let app = crate::helpers::spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;

    let mut impostor = app.browser();
    let response = impostor
        .submit(
            "/",
            &[("name", "alice"), ("code", &code), ("action", "join")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let html = response.text().await.unwrap();
    assert!(html.contains("The name alice is taken in this room"));
    assert!(impostor.cookie.is_none());
    // Nor by one that looks the same (case, a Cyrillic a) or hides a
    // zero-width space (refused outright).
    for lookalike in ["Alice", "\u{430}lice", "alice\u{200b}"] {
        let response = impostor
            .submit(
                "/",
                &[("name", lookalike), ("code", &code), ("action", "join")],
            )
            .await;
        let status = response.status();
        assert!(
            status == StatusCode::CONFLICT || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{lookalike:?}: {status}"
        );
        assert!(impostor.cookie.is_none(), "{lookalike:?}");
    }
    // Rejoining under her own session is fine, and with no tab open the
    // name is still hers.
    assert_eq!(alice.enter("alice", &code, "join").await, code);
    let page = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::OK);

    // Once she has left, the name is free.
    let left = alice.submit(&format!("/rooms/{code}/leave"), &[]).await;
    assert_eq!(left.status(), StatusCode::SEE_OTHER);
    assert_eq!(impostor.enter("alice", &code, "join").await, code);
    let old = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(
        old.status(),
        StatusCode::SEE_OTHER,
        "who left must join again"
    );
}
