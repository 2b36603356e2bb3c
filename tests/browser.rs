//! The web console in a real headless Chromium against a real bastion and a real `sshd`
//! target: signing in through a link from `ssh … web`, deciding a request on the page and
//! then using it over SSH, the player's marks, play button and search jumps, recordings that
//! hold markup and terminal escapes shown as inert text, and a break-glass review. Each test
//! saves screenshots in its temporary directory and checks what they show (the colours inside
//! an element's rectangle) as well as the page's DOM.

#[path = "common/chromium.rs"]
mod chromium;
mod common;
#[path = "browser/console.rs"]
mod console;

use std::time::Duration;

use common::interactive::Interactive;
use console::*;

#[test]
fn an_approver_approves_on_the_page_and_the_requesters_ssh_session_then_works() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let id = s.request(&s.bob, "web-ops");
    let before = gh.ssh(&s.bob, &["web-01:web-ops", "echo", "hi"]);
    assert_eq!(
        before.code(),
        126,
        "refused before approval: {}",
        before.err()
    );
    let card = format!("article#grant-{id}");

    // dave is no approver of web-ops: the page offers him nothing, and the API refuses him
    // even with his session's own anti-forgery value.
    s.sign_in(&s.dave);
    assert!(
        s.browser.url().ends_with("/requests"),
        "{}",
        s.browser.url()
    );
    assert!(s.browser.all(&card).is_empty(), "{}", s.browser.source());
    assert!(s.browser.all("button.approve").is_empty());
    assert!(
        s.browser
            .text("main")
            .contains("No requests are waiting for you.")
    );
    let answer = s.browser.script(&format!(
        "return fetch('/api/v1/requests/{id}/approve', {{
            method: 'POST',
            headers: {{ 'Content-Type': 'application/json',
                        'X-CSRF-Token': document.querySelector('input[name=csrf]').value }},
            body: JSON.stringify({{ comment: 'me too' }}),
         }}).then(async r => [r.status, await r.text()]);"
    ));
    assert_eq!(answer[0], 403, "{answer}");
    // Refused for who he is, not as a forgery: the browser's request passed those checks.
    let refusal: serde_json::Value = serde_json::from_str(answer[1].as_str().unwrap()).unwrap();
    assert_eq!(
        refusal["error"]["message"], "you may not approve role \"web-ops\"",
        "{refusal}"
    );
    s.sign_out();

    // alice lands on her requests, sees bob's with a green Approve button, and approves it.
    s.sign_in(&s.alice);
    assert!(
        s.browser.url().ends_with("/requests"),
        "{}",
        s.browser.url()
    );
    let text = s.browser.text(&card);
    for needle in ["bob", "web-ops on web-01", "browser tests", "pending"] {
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
    let button = format!("{card} button.approve");
    let rect = s.browser.rect(&button);
    let shot = s.browser.screenshot("1-request");
    let green = shot.count_near(rect, OK_GREEN);
    assert!(
        green * 2 > (rect.2 * rect.3) as usize,
        "{}: the Approve button {rect:?} is not green ({green} pixels)",
        shot.path.display()
    );
    s.browser
        .fill(&format!("{card} input[name=comment]"), "looks right");
    s.browser.click(&button);
    s.browser.until(
        "the request leaves the page",
        Duration::from_secs(10),
        |b| b.all(&card).is_empty() && b.url().ends_with("/requests"),
    );
    assert!(
        s.browser
            .text("main")
            .contains("No requests are waiting for you.")
    );
    let shot = s.browser.screenshot("1-approved");
    assert_eq!(
        shot.count_near((0, 0, shot.width, shot.height), OK_GREEN),
        0,
        "{}: no Approve button is left",
        shot.path.display()
    );
    let line = s.wait_for_audit("grant.approved", "actor", "alice");
    assert_eq!(line["detail"]["via"], "web", "{line}");

    let after = gh.ssh(&s.bob, &["web-01:web-ops", "echo", "hi"]);
    assert_eq!(after.code(), 0, "{}", after.err());
    assert_eq!(after.out(), "hi\n");
}

/// The prompt of bob's restricted shell.
const PROMPT: &str = "bob@web-01 [web-shell]$ ";

#[test]
fn the_players_marks_jump_to_the_screen_of_each_command_and_play_moves_the_clock() {
    let s = setup();
    let gh = &s.world.gatehouse;
    s.request(&s.bob, "web-shell");
    let mut shell = Interactive::spawn(gh.ssh_command(&s.bob, &["-tt"], &["web-01:web-shell"]));
    shell.wait_for(PROMPT, Duration::from_secs(20));
    // A pause between lines, so each mark has its own moment.
    let mut prompts = 1;
    for line in ["echo FIRST-MARK", "echo SECOND-MARK", "cat /etc/hostname"] {
        std::thread::sleep(Duration::from_millis(700));
        shell.send(format!("{line}\r").as_bytes());
        prompts += 1;
        shell.wait_for_count(PROMPT, prompts, Duration::from_secs(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    shell.send(b"exit\r");
    let out = shell.wait_exit(Duration::from_secs(20));
    let text = out.out();
    assert!(text.contains("FIRST-MARK\r\n"), "{text}");
    assert!(text.contains("gatehouse: denied: "), "{text}");
    let id = s.newest_session(&s.bob);

    s.sign_in(&s.bob);
    s.open_player(&id, "");
    s.browser
        .until("three marks", Duration::from_secs(10), |b| {
            b.all("ol#marks button").len() == 3
        });
    let marks = s.browser.script(
        "return Array.from(document.querySelectorAll('ol#marks button'), b => [b.textContent, b.className, Number(b.dataset.time)]);",
    );
    let mark = |needle: &str| {
        let i = marks
            .as_array()
            .unwrap()
            .iter()
            .position(|m| m[0].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no mark for {needle:?} in {marks}"));
        (
            i + 1,
            marks[i][1].as_str().unwrap().to_owned(),
            marks[i][2].as_f64().unwrap(),
        )
    };
    // The label is the command as it ran on the target, each word quoted.
    let (first, first_class, first_time) = mark("FIRST-MARK");
    let (second, second_class, second_time) = mark("SECOND-MARK");
    assert!(
        first_class.contains("run") && second_class.contains("run"),
        "{marks}"
    );
    assert!(first_time < second_time, "{marks}");
    let denied = marks
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m[1].as_str().unwrap().split(' ').any(|c| c == "denied"))
        .unwrap_or_else(|| panic!("no denied mark in {marks}"))
        + 1;

    // The denied mark is drawn red, the others are not.
    let denied_rect = s
        .browser
        .rect(&format!("ol#marks li:nth-child({denied}) button"));
    let run_rect = s
        .browser
        .rect(&format!("ol#marks li:nth-child({first}) button"));
    let shot = s.browser.screenshot("2-marks");
    let red = shot.count_near(denied_rect, BAD_RED);
    assert!(
        red > 20,
        "{}: the denied mark {denied_rect:?} is not red ({red} pixels)",
        shot.path.display()
    );
    assert_eq!(
        shot.count_near(run_rect, BAD_RED),
        0,
        "{}: a run mark is red",
        shot.path.display()
    );

    // Play from the start: the clock moves, the screen follows, the button offers to pause.
    assert_eq!(seconds(&s.browser.text("#clock")), 0.0);
    s.browser.click("#play");
    assert_eq!(s.browser.text("#play"), "Pause");
    s.browser
        .until("the clock advances", Duration::from_secs(10), |b| {
            seconds(&b.text("#clock")) >= 0.5
        });
    s.browser.until(
        "the screen follows the clock",
        Duration::from_secs(10),
        |b| {
            b.attr("#player", "data-shown")
                .is_some_and(|t| seconds(&t) > 0.2)
        },
    );

    // A mark clicked while playing stops the player at the first command: its line typed,
    // nothing of the second yet.
    let jump = |nth: usize, time: f64, what: &str| {
        s.browser
            .click(&format!("ol#marks li:nth-child({nth}) button"));
        s.browser.until(what, Duration::from_secs(10), |b| {
            b.attr("#player", "data-shown")
                .is_some_and(|t| (seconds(&t) - time).abs() < 0.002)
        });
        // Nothing moves it on from there.
        std::thread::sleep(Duration::from_millis(300));
        let shown = seconds(&s.browser.attr("#player", "data-shown").unwrap());
        assert!((shown - time).abs() < 0.002, "{what}: moved on to {shown}");
        assert_eq!(s.browser.text("#play"), "Play");
        assert!((seconds(&s.browser.text("#clock")) - time).abs() < 0.1);
    };
    jump(first, first_time, "the first mark's screen");
    let rows = s.screen_rows();
    assert!(
        rows.iter().any(|r| r.ends_with("$ echo FIRST-MARK")),
        "{rows:#?}"
    );
    assert!(!s.screen_text().contains("SECOND-MARK"), "{rows:#?}");
    s.assert_screen_drawn("2-first-mark");

    // The second: the first command's output above it, the second typed, its output not yet.
    jump(second, second_time, "the second mark's screen");
    let rows = s.screen_rows();
    assert!(rows.iter().any(|r| r == "FIRST-MARK"), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.ends_with("$ echo SECOND-MARK")),
        "{rows:#?}"
    );
    assert!(!rows.iter().any(|r| r == "SECOND-MARK"), "{rows:#?}");
    s.assert_screen_drawn("2-second-mark");
}

#[test]
fn markup_and_terminal_escapes_in_a_recording_stay_inert_text() {
    let s = setup();
    let gh = &s.world.gatehouse;
    s.request(&s.bob, "web-any");
    // One word for ssh, single-quoted for the target's sh; printf makes the escapes.
    let payload = concat!(
        "printf '",
        r"<script>window.__pwned=1</script>\r\n",
        r#"<img src=x onerror="window.__pwned=2">\r\n"#,
        r"\033]8;;https://evil.example\033\\click me\033]8;;\033\\\r\n",
        r"\033]52;c;SGVsbG8=\007after the clipboard\r\n",
        "'"
    );
    let out = gh.ssh(&s.bob, &["web-01:web-any", payload]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(
        out.out().contains("<script>window.__pwned=1</script>"),
        "{:?}",
        out.out()
    );
    assert!(
        out.out().contains("\x1b]52;c;SGVsbG8=\x07"),
        "{:?}",
        out.out()
    );
    let id = s.newest_session(&s.bob);

    s.sign_in(&s.bob);
    // Played to its end, as a reviewer would.
    s.open_player(&id, "");
    s.browser.click("#play");
    s.browser
        .until("the player reaches the end", Duration::from_secs(15), |b| {
            let clock = b.text("#clock");
            let Some((at, end)) = clock.split_once('/') else {
                return false;
            };
            b.text("#play") == "Play" && seconds(at) == seconds(end) && seconds(end) > 0.0
        });
    s.browser
        .until("the last screen is drawn", Duration::from_secs(10), |b| {
            b.script("return document.getElementById('screen').textContent;")
                .as_str()
                .is_some_and(|t| t.contains("after the clipboard"))
        });
    let text = s.screen_text();
    for needle in [
        "<script>window.__pwned=1</script>",
        r#"<img src=x onerror="window.__pwned=2">"#,
        "click me",
        "after the clipboard",
    ] {
        assert!(text.contains(needle), "{needle:?} not shown in {text:?}");
    }
    for absent in ["evil.example", "SGVsbG8", "]8;", "]52;"] {
        assert!(!text.contains(absent), "{absent:?} shown in {text:?}");
    }
    let found = s.browser.script(
        "return [typeof window.__pwned,
                 document.querySelectorAll('#screen script, #screen img, #screen a').length,
                 document.querySelectorAll('img, a[href*=\"evil\"]').length,
                 document.querySelectorAll('#screen *').length];",
    );
    assert_eq!(found[0], "undefined", "{found}");
    assert_eq!(found[1], 0, "{found}");
    assert_eq!(found[2], 0, "{found}");
    assert!(
        found[3].as_u64().unwrap() > 0,
        "the screen has its text spans: {found}"
    );
    s.assert_screen_drawn("3-inert");
}

#[test]
fn a_reviewer_acknowledges_a_break_glass_session_on_the_review_page() {
    let s = setup();
    let gh = &s.world.gatehouse;
    let out = gh.ssh(
        &s.bob,
        &[
            "breakglass",
            "web-01",
            "--reason",
            "database",
            "is",
            "down",
            "--",
            "echo",
            "$((6*7))",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "42\n");
    let id = s.newest_session(&s.bob);
    let card = format!("article#review-{id}");

    s.sign_in(&s.carol);
    s.open("/review");
    let text = s.browser.text(&card);
    assert!(text.contains("bob on web-01"), "{text}");
    assert!(text.contains("emergency"), "{text}");
    let button = format!("{card} button.ack");
    let rect = s.browser.rect(&button);
    let shot = s.browser.screenshot("4-queue");
    let green = shot.count_near(rect, OK_GREEN);
    assert!(
        green * 2 > (rect.2 * rect.3) as usize,
        "{}: the Acknowledge button {rect:?} is not green ({green} pixels)",
        shot.path.display()
    );
    s.browser.fill(
        &format!("{card} form input[name=note]"),
        "checked the restart",
    );
    s.browser.click(&button);
    s.browser.until(
        "the session leaves the queue",
        Duration::from_secs(10),
        |b| b.all(&card).is_empty() && b.url().ends_with("/review"),
    );
    assert!(
        s.browser
            .text("main")
            .contains("No break-glass session is waiting for review."),
        "{}",
        s.browser.source()
    );
    let line = s.wait_for_audit("review.acked", "session_id", &id);
    assert_eq!(line["actor"], "carol", "{line}");
    assert_eq!(
        line["detail"],
        serde_json::json!({ "via": "web" }),
        "{line}"
    );

    // The session's page says who reviewed it and what they wrote.
    s.open(&format!("/sessions/{id}"));
    let facts = s.browser.text("dl.facts");
    assert!(
        facts.contains("reviewed by carol: checked the restart"),
        "{facts}"
    );
}

#[test]
fn the_session_search_finds_output_and_its_link_jumps_the_player_there() {
    let s = setup();
    let gh = &s.world.gatehouse;
    s.request(&s.bob, "web-any");
    // The command holds `$((6*7))`, never the text searched for, which appears after 2 s.
    let out = gh.ssh(
        &s.bob,
        &[
            "web-01:web-any",
            "echo early; sleep 2; echo FOUND-$((6*7)); sleep 1; echo late",
        ],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "early\nFOUND-42\nlate\n");
    let id = s.newest_session(&s.bob);

    s.sign_in(&s.bob);
    s.open("/sessions");
    s.browser.fill("input[name=q]", "FOUND-42");
    s.browser.click("form.filters button[type=submit]");
    let row = format!("tr.session[data-id=\"{id}\"]");
    s.browser
        .until("the search result", Duration::from_secs(10), |b| {
            b.url().contains("q=FOUND-42") && !b.all(&row).is_empty()
        });
    assert_eq!(
        s.browser.all("tr.session").len(),
        1,
        "{}",
        s.browser.source()
    );
    let found = s.browser.text(&format!("{row} td:last-child"));
    assert!(found.starts_with("output at "), "{found}");
    let link = s.browser.attr(&format!("{row} a"), "href").unwrap();
    let hit: f64 = link
        .split("t=")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {link}"));
    assert!(
        hit >= 1.9,
        "the output came after 2 s, the hit says {hit}: {link}"
    );

    s.browser.click(&format!("{row} a"));
    s.browser
        .until("the player at the hit", Duration::from_secs(15), |b| {
            b.attr("#player", "data-shown").is_some()
        });
    let shown = seconds(&s.browser.attr("#player", "data-shown").unwrap());
    assert!((shown - hit).abs() < 0.05, "shown at {shown}, hit at {hit}");
    let rows = s.screen_rows();
    assert!(rows.iter().any(|r| r.contains("FOUND-42")), "{rows:#?}");
    assert!(!rows.iter().any(|r| r.contains("late")), "{rows:#?}");
    assert_eq!(
        s.browser
            .script("return document.getElementById('needle').value;"),
        "FOUND-42"
    );
    s.assert_screen_drawn("5-hit");
}
