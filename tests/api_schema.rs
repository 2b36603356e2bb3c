//! The OpenAPI document against the API it describes: schemathesis (from PyPI) generates
//! requests from the document, good and malformed, sends them to a real bastion with a real
//! API token, and checks every answer against the document: no server error, only documented
//! status codes and content types, bodies matching their schemas.

mod common;

use std::process::Command;
use std::time::Duration;

use common::web::{Console, console_config};
use common::*;

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let (port, http) = console_config();
    let (mut world, mut people) = World::new(&["alice", "bob"], &http);
    let bob = people.pop().unwrap();
    let alice = people.pop().unwrap();
    let policy = format!(
        "{}{}{}[[role]]\nname = \"web-ops\"\nmembers = [\"dev\"]\ntargets = [\"web-01\"]\nlogin = \"{login}\"\nmax_duration = \"4h\"\napprovals = 1\napprovers = [\"ops\"]\nshell = \"full\"\n",
        user_toml(&alice, &["ops", "audit"]),
        user_toml(&bob, &["dev"]),
        world.target_toml("web-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let console = Console::new(&world.gatehouse, port);
    // Something to list, decide and look at.
    for _ in 0..3 {
        let out = world.gatehouse.ssh(
            &bob,
            &[
                "request", "web-01", "--role", "web-ops", "--for", "1h", "--reason", "schema",
                "checks",
            ],
        );
        assert_eq!(out.code(), 0, "{}", out.err());
    }
    let created = run(
        world
            .gatehouse
            .command(&["tokens", "create", "--user", "alice", "--scope", "approve"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(created.code(), 0, "{}", created.err());
    let token = created.out().trim().to_owned();

    let schemathesis = Command::new("schemathesis").arg("--version").output();
    assert!(
        schemathesis.is_ok_and(|o| o.status.success()),
        "schemathesis is not installed: python3 -m pip install schemathesis==4.32.5 (.ci/run does)"
    );
    let cert = world.gatehouse.dir.join("data/keys/http.crt");
    let mut cmd = Command::new("schemathesis");
    cmd.args(["run", &format!("{}/api/openapi.json", console.url)])
        .args(["--checks", "all"])
        // A 503 is the documented answer when the audit log cannot take a line within its bound
        // (fail closed), which a burst on a loaded machine can cause; any other server error is
        // still caught, as an undocumented status code.
        .args(["--exclude-checks", "not_a_server_error"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--tls-verify", cert.to_str().unwrap()])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--generation-deterministic",
        ])
        .args([
            "--suppress-health-check",
            "all",
            "--workers",
            "1",
            "--no-color",
        ])
        // The coverage phase trips over an internal error of schemathesis on this Python;
        // examples, fuzzing and the stateful phase exercise every operation.
        .args(["--phases", "examples,fuzzing,stateful"])
        .current_dir(world.tmp.path())
        .env("HOME", world.tmp.path());
    let out = run(cmd, b"", Duration::from_secs(600));
    assert_eq!(
        out.code(),
        0,
        "schemathesis found answers that do not match the document:\n{}\n{}",
        out.out(),
        out.err()
    );
    // The bastion is still up and consistent after the barrage.
    assert_eq!(console.get("/healthz", &Default::default()).status, 200);
}
