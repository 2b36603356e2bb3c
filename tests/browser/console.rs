//! The world of the browser tests: a bastion with its console and a real `sshd` target, the
//! people and roles the tests use, a headless Chromium, and what the tests ask of the page.

use std::time::{Duration, Instant};

use crate::chromium::Browser;
use crate::common::web::{Console, console_config};
use crate::common::*;

/// The player's screen background (assets/app.css).
pub const SCREEN_BG: [u8; 3] = [0x0f, 0x14, 0x19];
/// The player's default text colour.
pub const SCREEN_FG: [u8; 3] = [0xd8, 0xde, 0xe9];
/// The green of the approve and acknowledge buttons.
pub const OK_GREEN: [u8; 3] = [0x1d, 0x7a, 0x3a];
/// The red of denials.
pub const BAD_RED: [u8; 3] = [0xb3, 0x26, 0x1e];

/// bob (dev) requests web-ops, which alice (ops) approves; dave (dev) approves nothing;
/// carol (audit) reviews. dev may also take web-shell (the restricted shell) and web-any (a
/// full shell) without approval, and break the glass.
pub struct Setup {
    // Dropped first: the browser's profile and screenshots live in the world's directory.
    pub browser: Browser,
    pub world: World,
    pub console: Console,
    pub alice: Person,
    pub bob: Person,
    pub carol: Person,
    pub dave: Person,
}

/// Starts the world: target, bastion with its console and policy, and a browser.
pub fn setup() -> Setup {
    let (port, http) = console_config();
    let (mut world, mut people) = World::new(&["alice", "bob", "carol", "dave"], &http);
    let dave = people.pop().unwrap();
    let carol = people.pop().unwrap();
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let role = |name: &str, rest: &str| {
        format!(
            "[[role]]\nname = \"{name}\"\nmembers = [\"dev\"]\ntargets = [\"web-01\"]\nlogin = \"{}\"\nmax_duration = \"4h\"\n{rest}\n\n",
            login()
        )
    };
    let policy = [
        user_toml(&alice, &["ops"]),
        user_toml(&bob, &["dev"]),
        user_toml(&carol, &["audit"]),
        user_toml(&dave, &["dev"]),
        world.target_toml("web-01"),
        role(
            "web-ops",
            "approvals = 1\napprovers = [\"ops\"]\nshell = \"full\"",
        ),
        role(
            "web-shell",
            "approvals = 0\nshell = \"restricted\"\ncommands = [\"echo *\", \"printf *\"]",
        ),
        role("web-any", "approvals = 0\nshell = \"full\""),
        role("emergency", "break_glass = true\nshell = \"full\""),
    ]
    .concat();
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let console = Console::new(&world.gatehouse, port);
    let browser = Browser::start(&world.tmp.path().join("browser"));
    Setup {
        browser,
        world,
        console,
        alice,
        bob,
        carol,
        dave,
    }
}

impl Setup {
    /// Signs `person` in as a person would: opens the link from a real `ssh … web` and presses
    /// *Sign in*; waits for the page that names them.
    pub fn sign_in(&self, person: &Person) {
        let link = Console::link_for(&self.world.gatehouse, person);
        assert!(link.starts_with(&self.console.url), "{link}");
        self.browser.goto(&link);
        self.browser.click("#sign-in");
        self.browser
            .until("the signed-in page", Duration::from_secs(10), |b| {
                !b.all("header.top .who").is_empty() && b.text("header.top .who") == person.name
            });
    }

    /// Presses *Sign out*.
    pub fn sign_out(&self) {
        self.browser.click("form.signout button");
        self.browser
            .until("the signed-out page", Duration::from_secs(10), |b| {
                b.all("header.top .who").is_empty()
            });
    }

    /// Opens `path` of the console.
    pub fn open(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.console.url));
    }

    /// `person` asks for `role` on web-01 over SSH (approved at once when the role needs no
    /// approval); returns the grant id.
    pub fn request(&self, person: &Person, role: &str) -> i64 {
        let out = self.world.gatehouse.ssh(
            person,
            &[
                "request", "web-01", "--role", role, "--for", "1h", "--reason", "browser", "tests",
            ],
        );
        assert_eq!(out.code(), 0, "request {role}: {}", out.err());
        out.out()
            .split_whitespace()
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no grant id in {:?}", out.out()))
    }

    /// The audit log's lines so far.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.world.gatehouse.dir.join("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an audit line of `event` with `field` = `value` is written.
    pub fn wait_for_audit(&self, event: &str, field: &str, value: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .audit_lines()
                .into_iter()
                .find(|l| l["event"] == event && l[field] == value)
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no {event} line with {field} = {value}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The id of `person`'s newest session, from the API as they see it.
    pub fn newest_session(&self, person: &Person) -> String {
        let auth = self.console.sign_in(&self.world.gatehouse, person);
        let list = self.console.get("/api/v1/sessions", &auth).json();
        list["sessions"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no session: {list}", person.name))
            .to_owned()
    }

    /// Opens the player of session `id` (with `query`) and waits until it shows a screen.
    pub fn open_player(&self, id: &str, query: &str) {
        self.open(&format!("/sessions/{id}{query}"));
        self.browser
            .until("the player shows a screen", Duration::from_secs(15), |b| {
                b.attr("#player", "data-shown").is_some()
            });
    }

    /// The screen's rows as the page shows them, without trailing blanks.
    pub fn screen_rows(&self) -> Vec<String> {
        let rows = self.browser.script(
            "return Array.from(document.querySelectorAll('#screen .line'), l => l.textContent.trimEnd());",
        );
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The screen's text content.
    pub fn screen_text(&self) -> String {
        self.browser
            .script("return document.getElementById('screen').textContent;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Checks that the screenshot `name` shows the player's screen as light text on its dark
    /// background.
    pub fn assert_screen_drawn(&self, name: &str) {
        let rect = self.browser.rect("#screen");
        let shot = self.browser.screenshot(name);
        let area = (rect.2 * rect.3) as usize;
        assert!(area > 10_000, "the screen is {rect:?}");
        let dark = shot.count_near(rect, SCREEN_BG);
        let light = shot.count_near(rect, SCREEN_FG);
        assert!(
            dark * 10 > area * 7,
            "{}: the screen {rect:?} is not mostly its dark background ({dark} of {area})",
            shot.path.display()
        );
        assert!(
            light > 40,
            "{}: the screen {rect:?} shows no light text ({light} pixels)",
            shot.path.display()
        );
    }
}

/// Seconds from a `data-*` attribute or the clock's `12.3s / 45.6s`.
pub fn seconds(text: &str) -> f64 {
    text.trim()
        .trim_end_matches('s')
        .split('s')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not seconds: {text:?}"))
}
