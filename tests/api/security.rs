//! Browser security: state-changing requests from another site are refused,
//! cookie or not, and pages carry the protective headers.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_cross_site_post_with_the_session_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let cookie = alice.cookie.clone().unwrap();
    let forged = [
        ("origin", "http://evil.example".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("origin", "null".to_string()),
    ];
    let post = |headers: Vec<(&'static str, String)>, text: &str| {
        let mut request = app
            .client
            .post(app.url(&format!("/rooms/{code}/messages")))
            .header("cookie", &cookie)
            .json(&json!({ "text": text }));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    for (header, value) in forged {
        let response = post(vec![(header, value.clone())], "forged").await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    let response = app
        .client
        .post(app.url("/"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("name", "mallory"), ("action", "create")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let history = app.history(&code, "?since=0").await;
    assert!(
        history.iter().all(|e| e["kind"] != "message"),
        "nothing was posted"
    );
    let html = alice.room_page(&code).await;
    assert!(
        html.contains(r#"data-me="alice""#),
        "the session was not changed"
    );

    // From this site, the same post goes through.
    let this_site = format!("http://{}", app.addr);
    let same_site = post(
        vec![
            ("origin", this_site),
            ("sec-fetch-site", "same-origin".to_string()),
        ],
        "mine",
    )
    .await
    .unwrap();
    assert_eq!(same_site.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn another_site_cannot_sign_a_visitor_in_or_act_without_a_cookie_either() {
    // Login CSRF: a form on another site that would put a visitor, with
    // no cookie yet, in a room the attacker reads, under a name it chose.
    let app = spawn_app().await;
    let code = app.create_room().await;
    let foreign = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ];
    for (header, value) in foreign {
        let form = [
            ("name", "victim"),
            ("code", code.as_str()),
            ("action", "join"),
        ];
        let requests = [
            app.client.post(app.url("/")).form(&form),
            app.client
                .post(app.url(&format!("/rooms/{code}/join")))
                .form(&[("name", "victim")]),
            app.client.post(app.url("/rooms")),
        ];
        for request in requests {
            let response = request.header(header, value).send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{header}: {value}"
            );
            assert!(response.headers().get("set-cookie").is_none());
        }
    }
    let history = app.history(&code, "?since=0").await;
    assert!(
        history.iter().all(|e| e["name"] != "victim"),
        "nobody joined: {history:?}"
    );
    // The visitor's own typing (Sec-Fetch-Site: none) and this site's
    // pages are let in.
    for (header, value) in [
        ("sec-fetch-site", "none".to_string()),
        ("origin", format!("http://{}", app.addr)),
    ] {
        let response = app
            .client
            .post(app.url("/rooms"))
            .header(header, value.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{header}: {value}");
    }
}

#[tokio::test]
async fn scripts_send_no_origin_and_may_post_with_their_token() {
    let app = spawn_app().await;
    let code = app.create_room().await;
    let response = app
        .post_json(&code, json!({"name": "bot", "text": "hello"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // One that says it is another site's page is a browser's, and refused
    // like any other.
    let response = app
        .post_json_with(
            &code,
            json!({"name": "bot", "text": "hello"}),
            &[("origin", "http://elsewhere.example")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_send_csp_nosniff_and_referrer_policy() {
    let app = spawn_app().await;
    for path in ["/", "/rooms/QQQQ"] {
        let response = app.browser().get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for part in [
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
    }
    let css = app
        .client
        .get(app.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_cookie_is_secure_when_asked_or_when_a_trusted_proxy_says_https() {
    fn marked_secure(response: &reqwest::Response) -> bool {
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        cookie.contains("Secure")
    }
    let forced = crate::helpers::spawn_with(|c| c.secure_cookies = true).await;
    let mut visitor = forced.browser();
    let response = visitor
        .submit("/", &[("name", "al"), ("action", "create")])
        .await;
    assert!(marked_secure(&response));

    let proxied =
        crate::helpers::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()])
            .await;
    let enter = |proto: Option<&str>| {
        let mut request = proxied.client.post(proxied.url("/"));
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        request.form(&[("name", "al"), ("action", "create")]).send()
    };
    assert!(marked_secure(&enter(Some("https")).await.unwrap()));
    assert!(!marked_secure(&enter(None).await.unwrap()));
}

#[tokio::test]
async fn limits_count_the_forwarded_client_only_behind_a_trusted_proxy() {
    // Joins are charged to the client's address.
    async fn post(app: &crate::helpers::TestApp, code: &str, from: &str) -> StatusCode {
        let response = app
            .client
            .post(app.url(&format!("/rooms/{code}/join")))
            .header("x-forwarded-for", from)
            .json(&json!({"name": format!("{}", fastrand::u32(..))}))
            .send()
            .await
            .unwrap();
        response.status()
    }
    let behind_proxy = crate::helpers::spawn_with(|c| {
        c.join_burst = 1.0;
        c.join_rate = 0.01;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let code = behind_proxy.create_room().await;
    assert_eq!(
        post(&behind_proxy, &code, "203.0.113.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&behind_proxy, &code, "203.0.113.2").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&behind_proxy, &code, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    let direct = crate::helpers::spawn_with(|c| {
        c.join_burst = 1.0;
        c.join_rate = 0.01;
    })
    .await;
    let code = direct.create_room().await;
    assert_eq!(
        post(&direct, &code, "203.0.113.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&direct, &code, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "an untrusted X-Forwarded-For is ignored"
    );
}

#[tokio::test]
async fn a_planted_second_cookie_counts_for_nothing_and_https_takes_only_host_cookies() {
    let app = crate::helpers::spawn_app().await;
    let mut alice = app.browser();
    let code = alice.enter("alice", "", "create").await;
    let mine = alice.cookie.clone().unwrap();
    assert!(mine.starts_with("roomcast_session="), "{mine}");
    // Using the page renews the cookie's life, as using the session
    // renews the session's.
    let page = alice.get(&format!("/rooms/{code}")).await;
    let renewed = page.headers()["set-cookie"].to_str().unwrap();
    assert!(renewed.starts_with(&format!("{mine};")), "{renewed}");
    assert!(renewed.contains("Max-Age=2592000"), "{renewed}");

    // Mallory's own session, planted beside alice's (as a sibling
    // subdomain can): neither counts, so alice never speaks as mallory.
    let planted = app.token(&code, "mallory").await;
    alice.cookie = Some(format!("roomcast_session={planted}; {mine}"));
    let page = alice.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let post = alice
        .submit(&format!("/rooms/{code}/messages"), &[("text", "hi")])
        .await;
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);

    // A cookie another subdomain set that is not ASCII leaves hers
    // readable.
    let with_odd = format!("x=\u{e9}; {mine}");
    let odd = reqwest::header::HeaderValue::from_bytes(with_odd.as_bytes()).unwrap();
    let page = app
        .client
        .get(app.url(&format!("/rooms/{code}")))
        .header("cookie", odd)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(r#"data-me="alice""#));

    // Over HTTPS the cookie is __Host- (no subdomain can set one), and a
    // plain one is not a way in.
    let secure = crate::helpers::spawn_with(|c| c.secure_cookies = true).await;
    let mut bob = secure.browser();
    let code = bob.enter("bob", "", "create").await;
    let host_cookie = bob.cookie.clone().unwrap();
    assert!(
        host_cookie.starts_with("__Host-roomcast_session="),
        "{host_cookie}"
    );
    assert!(bob.room_page(&code).await.contains(r#"data-me="bob""#));
    bob.cookie = Some(host_cookie.replace("__Host-", ""));
    let page = bob.get(&format!("/rooms/{code}")).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "a plain cookie");
}

#[tokio::test]
async fn invite_links_follow_the_public_url_and_never_an_untrusted_host() {
    use crate::helpers::spawn_with;

    let href = |html: &str| {
        let at = html.find(r#"id="invite" href=""#).expect("an invite link") + 18;
        let written = html[at..].split('"').next().unwrap();
        written.replace("&#x3D;", "=")
    };
    let page =
        |app: &crate::helpers::TestApp, code: &str, cookie: &str, headers: &[(&str, &str)]| {
            let mut request = app
                .client
                .get(app.url(&format!("/rooms/{code}")))
                .header("cookie", cookie);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            async move { request.send().await.unwrap().text().await.unwrap() }
        };

    // Told by --public-url: links carry it, whatever Host says.
    let public = spawn_with(|c| {
        c.public_url = Some(roomcast::site::Origin::parse("https://chat.example.com").unwrap())
    })
    .await;
    let mut al = public.browser();
    let code = al.enter("al", "", "create").await;
    let cookie = al.cookie.clone().unwrap();
    let html = page(&public, &code, &cookie, &[("host", "evil.example")]).await;
    assert_eq!(
        href(&html),
        format!("https://chat.example.com/?code={code}")
    );
    // And a browser's Origin must be that one, scheme and all.
    for (origin, allowed) in [
        ("https://chat.example.com", true),
        ("http://chat.example.com", false),
        ("https://evil.example", false),
    ] {
        let response = public
            .client
            .post(public.url(&format!("/rooms/{code}/messages")))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        let expected = if allowed {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(response.status(), expected, "{origin}");
    }

    // Told by a trusted proxy.
    let proxied = spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let mut bo = proxied.browser();
    let code = bo.enter("bo", "", "create").await;
    let cookie = bo.cookie.clone().unwrap();
    // (Over plain HTTP: the cookie was set so.)
    let told = [
        ("x-forwarded-host", "chat.example.com"),
        ("host", "10.0.0.5"),
    ];
    let html = page(&proxied, &code, &cookie, &told).await;
    assert_eq!(href(&html), format!("http://chat.example.com/?code={code}"));

    // Told by nobody: the link is a path, never the Host anyone can send.
    let plain = crate::helpers::spawn_app().await;
    let mut cy = plain.browser();
    let code = cy.enter("cy", "", "create").await;
    let cookie = cy.cookie.clone().unwrap();
    let html = page(&plain, &code, &cookie, &[("host", "evil.example")]).await;
    assert_eq!(href(&html), format!("/?code={code}"));
}
