//! The conversation in the browser: edits, deletes and reactions seen by
//! the other person live and after a reload; a mention completed as it is
//! typed, marked, and raising a desktop notification in a hidden tab.

use fantoccini::Locator;

use crate::harness::{driver, Person, DESKTOP, ENTER};
use crate::{alice_and_bob, base, server};

const ARROW_UP: &str = "\u{E013}";
const TAB: &str = "\u{E004}";

/// A script: the message on the page whose text (or former text) the
/// test knows by its id.
fn message(id: u64) -> String {
    format!("document.querySelector('#log li.message[data-id=\"{id}\"]')")
}

/// Waits for `text` as a message and returns its id.
async fn id_of(person: &Person, text: &str) -> u64 {
    let literal = serde_json::to_string(text).unwrap();
    let id = person
        .wait_for(&format!(
            "[...document.querySelectorAll('#log li.message')].find(li => \
             li.querySelector('.text')?.textContent === {literal})?.dataset.id"
        ))
        .await;
    id.as_str().unwrap().parse().unwrap()
}

/// Opens the actions of message `id` and clicks what `selector` finds in them.
async fn act(person: &Person, id: u64, selector: &str) {
    let tools = format!("#log li.message[data-id=\"{id}\"] details.tools");
    let summary = person
        .client
        .find(Locator::Css(&format!("{tools} > summary")))
        .await
        .unwrap();
    // Shown on hover: the pointer goes there first, as a person's would.
    person
        .eval(&format!(
            "{}.scrollIntoView({{block: 'center'}}) || true",
            message(id)
        ))
        .await;
    summary.click().await.unwrap();
    let target = person
        .client
        .find(Locator::Css(&format!("{tools} {selector}")))
        .await
        .unwrap();
    target.click().await.unwrap();
}

#[tokio::test]
async fn one_edits_and_deletes_and_the_other_sees_both_live_and_after_reload() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let (alice, bob, _) = alice_and_bob(&driver, &app, DESKTOP).await;

    alice.say("helo wrold").await;
    let id = id_of(&bob, "helo wrold").await;
    bob.say("a reply").await;
    alice.wait_for_text("a reply").await;
    // Only her page offers her the edit and delete.
    let offered = format!("!!{}.querySelector('form.edit')", message(id));
    assert_eq!(bob.eval(&offered).await, false);
    assert_eq!(alice.eval(&offered).await, true);

    // Up in the empty box edits her last message.
    alice.type_text(ARROW_UP).await;
    let field = format!("#edit{id}");
    alice
        .wait_for(&format!(
            "document.activeElement === document.querySelector('{field}')"
        ))
        .await;
    let editing = alice.client.find(Locator::Css(&field)).await.unwrap();
    editing.clear().await.unwrap();
    editing
        .send_keys(&format!("hello world{ENTER}"))
        .await
        .unwrap();
    let edited = format!(
        "{m}.querySelector('.text').textContent === 'hello world' && !!{m}.querySelector('.edited')",
        m = message(id)
    );
    bob.wait_for(&edited).await;
    alice.wait_for(&edited).await;
    assert_eq!(
        alice.eval("document.activeElement.id").await,
        "text",
        "back to the message box"
    );

    act(&alice, id, "form.delete button").await;
    alice.client.accept_alert().await.unwrap();
    let deleted = format!(
        "{m}.classList.contains('deleted') && {m}.textContent.includes('message deleted')",
        m = message(id)
    );
    bob.wait_for(&deleted).await;
    alice.wait_for(&deleted).await;
    for person in [&alice, &bob] {
        let log = person.text_of("#log").await;
        assert!(
            !log.contains("hello world") && !log.contains("helo"),
            "{log}"
        );
    }

    // After a reload, as it was left.
    bob.client.refresh().await.unwrap();
    bob.wait_until_live().await;
    bob.wait_for(&deleted).await;
    let log = bob.text_of("#log").await;
    assert!(!log.contains("hello") && log.contains("a reply"), "{log}");
}

#[tokio::test]
async fn a_reaction_shows_on_both_pages_and_toggles() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let (alice, bob, _) = alice_and_bob(&driver, &app, DESKTOP).await;
    alice.say("ship it?").await;
    let id = id_of(&bob, "ship it?").await;

    act(&bob, id, "form.react button[value='🎉']").await;
    let chip = |count: u32, names: &str, pressed: bool| {
        format!(
            "(() => {{ const b = {}.querySelector('.reactions button.reaction[value=\"🎉\"]'); \
             return !!b && b.querySelector('.count').textContent === '{count}' && \
             b.title === '{names}' && b.getAttribute('aria-pressed') === '{pressed}'; }})()",
            message(id)
        )
    };
    bob.wait_for(&chip(1, "bob", true)).await;
    alice.wait_for(&chip(1, "bob", false)).await;

    // alice adds hers by the chip; bob takes his off by his.
    let on_chip = format!("#log li.message[data-id=\"{id}\"] .reactions button.reaction");
    alice
        .client
        .find(Locator::Css(&on_chip))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    bob.wait_for(&chip(2, "bob, alice", true)).await;
    alice.wait_for(&chip(2, "bob, alice", true)).await;
    bob.client
        .find(Locator::Css(&on_chip))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice.wait_for(&chip(1, "alice", true)).await;

    bob.client.refresh().await.unwrap();
    bob.wait_until_live().await;
    bob.wait_for(&chip(1, "alice", false)).await;
}

#[tokio::test]
async fn a_mention_is_completed_marked_and_notifies_a_hidden_tab() {
    let Some(driver) = driver() else { return };
    let app = server().await;
    let (alice, bob, code) = alice_and_bob(&driver, &app, DESKTOP).await;

    // Nothing is asked on load; alice allows notifications as the
    // browser's prompt would (DevTools' Browser.grantPermissions), then
    // presses "Notify me".
    assert_eq!(
        alice.eval("Notification.permission").await,
        "default",
        "not asked on page load"
    );
    alice.allow_notifications(&base(&app)).await;
    alice
        .client
        .find(Locator::Css("#notify"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice
        .wait_for("!document.querySelector('#notify-choice').hidden")
        .await;
    assert_eq!(
        alice
            .eval("document.querySelector('#notify-mode').value")
            .await,
        "mentions"
    );
    // Every notification the page makes, with whether the browser showed
    // it (the real one is made; this only watches).
    alice
        .eval(
            "(() => { const Real = window.Notification; window.shown = []; \
             window.Notification = function (title, options) { \
               const n = new Real(title, options); const seen = { title, body: options.body, state: 'made' }; \
               window.shown.push(seen); n.onshow = () => { seen.state = 'shown'; }; \
               n.onerror = () => { seen.state = 'error'; }; return n; }; \
             Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission }); \
             return true; })()",
        )
        .await;
    alice.hide(true).await;

    // bob types "@al": the list offers alice; Tab takes her.
    bob.type_text("@al").await;
    bob.wait_for("document.querySelector('#mention-list li')?.textContent === '@alice'")
        .await;
    bob.type_text(TAB).await;
    assert_eq!(
        bob.eval("document.querySelector('#text').value").await,
        "@alice "
    );
    bob.type_text(&format!("can you look?{ENTER}")).await;
    bob.say("and a plain one").await;
    alice.wait_for_text("and a plain one").await;

    let id = id_of(&alice, "@alice can you look?").await;
    let marked = format!(
        "{m}.classList.contains('mentions-me') && {m}.querySelector('.mention.me')?.textContent === '@alice'",
        m = message(id)
    );
    alice.wait_for(&marked).await;
    bob.wait_for(&format!("!!{}?.querySelector('.mention')", message(id)))
        .await;
    assert_eq!(
        alice.client.title().await.unwrap(),
        format!("(2 · @1) {code} · roomcast")
    );
    let shown = alice
        .wait_for("window.shown.length === 1 && window.shown[0].state !== 'made' && window.shown")
        .await;
    assert_eq!(shown[0]["title"], format!("bob mentioned you in {code}"));
    assert_eq!(shown[0]["body"], "@alice can you look?");
    assert_eq!(shown[0]["state"], "shown", "the browser showed it");

    // Every message, by choice.
    alice
        .eval("(document.querySelector('#notify-mode').value = 'all', document.querySelector('#notify-mode').dispatchEvent(new Event('change')), true)")
        .await;
    app.say(&code, "carol", "hello all").await;
    alice.wait_for("window.shown.length === 2").await;
    alice.hide(false).await;
    assert_eq!(
        alice.client.title().await.unwrap(),
        format!("{code} · roomcast")
    );
}

#[tokio::test]
async fn a_page_of_reactions_still_loads_what_came_before() {
    let Some(driver) = driver() else { return };
    let app = crate::helpers::spawn_with(|c| c.post_burst = 1000.0).await;
    let alice = driver.person(DESKTOP, true).await;
    let code = alice.enter(&base(&app), "alice", None).await;
    alice.wait_until_live().await;
    let first = app.say(&code, "bob", "the first words").await;
    let target = first["id"].as_u64().unwrap();
    let bob = app.token(&code, "bob").await;
    for _ in 0..60 {
        let toggled = app
            .client
            .post(app.url(&format!("/rooms/{code}/messages/{target}/reactions")))
            .bearer_auth(&bob)
            .json(&serde_json::json!({ "emoji": "👍" }))
            .send()
            .await
            .unwrap();
        assert_eq!(toggled.status(), reqwest::StatusCode::OK);
    }
    // The newest 50 events are all changes: the page loads on past them.
    alice.client.refresh().await.unwrap();
    alice.wait_until_live().await;
    alice.wait_for_text("the first words").await;
    assert_eq!(alice.message_texts().await, ["the first words"]);
}
