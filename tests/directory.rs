//! People from a real OpenLDAP directory, end to end: a user whose key and group exist only in
//! the directory requests, is approved and logs in with a real `ssh`; leaving the group, losing
//! a key or leaving the directory ends access within about a second of the sync; a directory
//! that cannot be read keeps the last good state, with an alert; a sync that would remove most
//! people is held until an operator accepts it.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::interactive::Interactive;
use common::receiver::Receiver;
use common::slapd::{self, Slapd};
use common::{Person, World, login, run, user_toml};

/// How long every node may take to put a stored directory state in force (it polls twice a
/// second), with room for a busy machine.
const IN_FORCE: Duration = Duration::from_millis(1200);

/// A deployment: a slapd, a target, a bastion reading people from the directory, and an alert
/// receiver.
struct Setup {
    ldap: Slapd,
    world: World,
    alerts: Receiver,
    /// People whose keys are in the directory.
    people: Vec<Person>,
    /// alice: an approver defined in the policy files.
    alice: Person,
}

/// `names` live in the directory (each with their key, in `ldap-ops`); `extra_directory`
/// is appended to `[directory]`.
fn setup(names: &[&str], extra_directory: &str) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = listener.local_addr().unwrap().port();
    let alerts = Receiver::start(listener);
    let mut all = vec!["alice"];
    all.extend_from_slice(names);
    let tmp_people = tempfile::tempdir().unwrap();
    let mut people = common::people(tmp_people.path(), &all);
    let alice = people.remove(0);
    let mut ldif = String::new();
    for (i, p) in people.iter().enumerate() {
        ldif.push_str(&slapd::person(&p.name, 10_000 + i as u32, &[&p.public]));
    }
    let members: Vec<&str> = names.to_vec();
    ldif.push_str(&slapd::group("ldap-ops", &members));
    ldif.push_str(&slapd::group("ldap-leads", &[]));
    let ldap = Slapd::start(&ldif);
    let config = format!(
        "[directory]\nurl = \"{}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\n\
         base_dn = \"ou=people,{}\"\ngroup_base_dn = \"ou=groups,{}\"\n\
         disabled_filter = \"(loginShell=/usr/sbin/nologin)\"\n\
         groups = {{ ldap-ops = \"ops\", ldap-leads = \"leads\" }}\n{extra_directory}\n\
         [[alerts.webhook]]\nurl = \"http://127.0.0.1:{hook}/hook\"\n",
        ldap.url(),
        slapd::SERVICE,
        ldap.password_file().display(),
        slapd::BASE,
        slapd::BASE,
    );
    let (mut world, _) = World::new(&[], &config);
    // The keys live outside the world's directory; keep them for the test's length.
    std::mem::forget(tmp_people);
    let policy = format!(
        "{}{}[[role]]\nname = \"web-ops\"\nmembers = [\"ops\"]\ntargets = [\"web-01\"]\n\
         login = \"{login}\"\nmax_duration = \"4h\"\napprovals = 1\napprovers = [\"leads\"]\n\
         shell = \"full\"\n\n\
         [[role]]\nname = \"web-self\"\nmembers = [\"ops\"]\ntargets = [\"web-01\"]\n\
         login = \"{login}\"\nmax_duration = \"4h\"\napprovals = 0\nshell = \"full\"\n",
        user_toml(&alice, &["leads"]),
        world.target_toml("web-01"),
        login = login(),
    );
    world.gatehouse.write_policy("main.toml", &policy);
    world.gatehouse.start();
    let s = Setup {
        ldap,
        world,
        alerts,
        people,
        alice,
    };
    // The bastion syncs when it starts.
    s.wait_for_keys(&s.people[0].name, 1, Duration::from_secs(30));
    s
}

impl Setup {
    fn person(&self, name: &str) -> &Person {
        self.people.iter().find(|p| p.name == name).unwrap()
    }

    fn gatehouse(&self, args: &[&str]) -> common::Output {
        run(
            self.world.gatehouse.command(args),
            b"",
            Duration::from_secs(60),
        )
    }

    /// `gatehouse directory sync`, expecting `code`.
    fn sync(&self, args: &[&str], code: i32) -> common::Output {
        let mut all = vec!["directory", "sync"];
        all.extend_from_slice(args);
        let out = self.gatehouse(&all);
        assert_eq!(out.code(), code, "{}{}", out.out(), out.err());
        out
    }

    /// A sync from the command line, and the time the bastion takes to put it in force.
    fn sync_in_force(&self) {
        self.sync(&[], 0);
        std::thread::sleep(IN_FORCE);
    }

    /// Waits until the directory's stored state lists `keys` keys for `name` (read with the
    /// CLI, so that no refused login counts against the test's address), then for the
    /// bastion to put it in force: within a second, as every node does.
    fn wait_for_keys(&self, name: &str, keys: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.gatehouse(&["directory", "show", name, "--json"]);
            let shown: serde_json::Value =
                serde_json::from_str(out.out().trim()).unwrap_or_default();
            if shown["keys"].as_array().is_some_and(|k| k.len() == keys) {
                std::thread::sleep(IN_FORCE);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never had {keys} keys: {}{}\n{}",
                out.out(),
                out.err(),
                self.world.gatehouse.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A grant for `who` on `role` (approved by alice when the role needs it).
    fn grant(&self, who: &Person, role: &str) -> i64 {
        let gh = &self.world.gatehouse;
        let out = gh.ssh(
            who,
            &[
                "request", "web-01", "--role", role, "--for", "1h", "--reason", "INC-7",
            ],
        );
        assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
        let id: i64 = out
            .out()
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no grant id in {}", out.out()));
        if role == "web-ops" {
            let ok = gh.ssh(&self.alice, &["approve", &id.to_string()]);
            assert_eq!(ok.code(), 0, "{}", ok.err());
        }
        id
    }

    /// `sleep 60` on web-01 through the bastion, once it runs on the target.
    fn sleeping(&self, who: &Person) -> Interactive {
        let before = self.world.target.log().matches("Starting session:").count();
        let cmd = self
            .world
            .gatehouse
            .ssh_command(who, &[], &["web-01", "sleep", "60"]);
        let session = Interactive::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.world.target.log().matches("Starting session:").count() <= before {
            assert!(Instant::now() < deadline, "{}", self.world.target.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        session
    }

    fn grant_line(&self, id: i64) -> String {
        self.gatehouse(&["grants", "show", &id.to_string()]).out()
    }
}

/// How long `session` takes to end after `from`, at most `limit`.
fn ends_within(session: Interactive, from: Instant, limit: Duration) -> (Duration, common::Output) {
    let out = session.wait_exit(limit);
    (from.elapsed(), out)
}

#[test]
fn a_directory_user_is_approved_logs_in_and_leaving_the_group_ends_the_session() {
    let s = setup(&["dora", "erin"], "");
    let dora = s.person("dora");
    assert_eq!(s.world.gatehouse.ssh(dora, &["whoami"]).code(), 0);
    let grant = s.grant(dora, "web-ops");
    let out = s
        .world
        .gatehouse
        .ssh(dora, &["web-01:web-ops", "echo", "in"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out(), "in\n");

    let session = s.sleeping(dora);
    s.ldap.modify(&format!(
        "dn: cn=ldap-ops,ou=groups,{}\nchangetype: modify\ndelete: member\nmember: {}\n",
        slapd::BASE,
        slapd::person_dn("dora")
    ));
    s.sync(&[], 0);
    let synced = Instant::now();
    let (took, out) = ends_within(session, synced, Duration::from_secs(10));
    println!("the session ended {took:?} after the sync");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(out.code(), 126, "{}{}", out.out(), out.err());
    assert!(
        out.err()
            .contains("dora is no longer a member of role web-ops"),
        "{}",
        out.err()
    );
    let show = s.grant_line(grant);
    assert!(show.contains("state        revoked"), "{show}");
    assert!(show.contains("ended by     directory"), "{show}");
    s.alerts
        .wait_for("\"event\":\"grant.revoked\"", Duration::from_secs(20));
    // She still logs in (she is in the directory) but holds nothing.
    assert_eq!(s.world.gatehouse.ssh(dora, &["whoami"]).code(), 0);
    let again = s.world.gatehouse.ssh(dora, &["web-01", "true"]);
    assert_eq!(again.code(), 126, "{}", again.err());
    // erin, still in the group, is untouched.
    assert_eq!(
        s.world.gatehouse.ssh(s.person("erin"), &["whoami"]).code(),
        0
    );
}

#[test]
fn a_key_removed_from_the_directory_stops_logging_in_and_ends_its_sessions() {
    // The bastion's own sync, every two seconds: no command-line sync in this test.
    let s = setup(&["dora", "erin"], "sync_interval = \"2s\"\n");
    let dora = s.person("dora");
    // A second key for dora, added in the directory.
    let spare_dir = tempfile::tempdir().unwrap();
    let spare = common::people(spare_dir.path(), &["dora"]).remove(0);
    s.ldap.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: sshPublicKey\nsshPublicKey: {}\n",
        slapd::person_dn("dora"),
        spare.public
    ));
    s.wait_for_keys("dora", 2, Duration::from_secs(20));
    s.grant(dora, "web-self");
    let session = s.sleeping(dora);
    // A shared connection (ControlMaster), opened with the key that is about to go.
    let socket = spare_dir.path().join("master.sock");
    let socket = socket.to_str().unwrap();
    let master = run(
        s.world
            .gatehouse
            .ssh_command(dora, &["-M", "-S", socket, "-f", "-N"], &[]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(master.code(), 0, "{}", master.err());
    s.ldap.modify(&format!(
        "dn: {}\nchangetype: modify\ndelete: sshPublicKey\nsshPublicKey: {}\n",
        slapd::person_dn("dora"),
        dora.public
    ));
    let removed = Instant::now();
    let (took, out) = ends_within(session, removed, Duration::from_secs(15));
    println!("the session ended {took:?} after the key was removed (sync every 2 s)");
    assert_eq!(out.code(), 126, "{}{}", out.out(), out.err());
    assert!(out.err().contains("is no longer listed"), "{}", out.err());
    let refused = s.world.gatehouse.ssh(dora, &["whoami"]);
    assert_eq!(refused.code(), 255, "{}", refused.err());
    // The connection that is already open can do nothing more either.
    for args in [&["whoami"][..], &["web-01", "true"][..]] {
        let shared = run(
            s.world
                .gatehouse
                .ssh_command(dora, &["-S", socket, "-o", "ControlMaster=no"], args),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(
            shared.code(),
            126,
            "{args:?}: {}{}",
            shared.out(),
            shared.err()
        );
        assert!(
            shared.err().contains("no longer listed"),
            "{}",
            shared.err()
        );
    }
    let _ = run(
        s.world
            .gatehouse
            .ssh_command(dora, &["-S", socket, "-O", "exit"], &[]),
        b"",
        Duration::from_secs(10),
    );
    // The key that is still listed works, and the grant stands: only the key went.
    assert_eq!(s.world.gatehouse.ssh(&spare, &["whoami"]).code(), 0);
    let out = s.world.gatehouse.ssh(&spare, &["web-01", "echo", "still"]);
    assert_eq!(out.code(), 0, "{}", out.err());
}

#[test]
fn while_the_directory_is_down_the_last_good_state_stays_with_an_alert() {
    let mut s = setup(&["dora"], "");
    let dora = s.people.remove(0);
    let dora = &dora;
    s.grant(dora, "web-self");
    s.ldap.stop();
    let out = s.sync(&[], 1);
    assert!(
        out.err().contains("the last good state stays"),
        "{}",
        out.err()
    );
    let (_, alert) = s.alerts.wait_for(
        "\"event\":\"directory.sync_failed\"",
        Duration::from_secs(20),
    );
    assert!(alert.contains("1 people"), "{alert}");
    let status = s.gatehouse(&["directory", "status"]);
    assert!(status.out().contains("failing since"), "{}", status.out());
    // Nothing was taken: dora logs in and works, also after the bastion restarts.
    let out = s.world.gatehouse.ssh(dora, &["web-01", "echo", "up"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    s.world.gatehouse.stop(false);
    s.world.gatehouse.start();
    let out = s.world.gatehouse.ssh(dora, &["web-01", "echo", "up"]);
    assert_eq!(out.code(), 0, "{}{}", out.err(), s.world.gatehouse.log());
    // The directory is back: the next sync succeeds and clears the failure.
    s.ldap.start_again();
    s.sync(&[], 0);
    let status = s.gatehouse(&["directory", "status"]);
    assert!(!status.out().contains("failing"), "{}", status.out());
}

#[test]
fn a_sync_that_would_remove_most_people_is_held_until_an_operator_accepts_it() {
    let names = [
        "dora", "erin", "finn", "gail", "hugo", "iris", "jack", "kate", "liam", "mona",
    ];
    let s = setup(&names, "max_removal = \"10%\"\n");
    let dora = s.person("dora");
    // A broken export: six of ten people vanish from the directory.
    for name in &names[..6] {
        s.ldap.modify(&format!(
            "dn: {}\nchangetype: delete\n",
            slapd::person_dn(name)
        ));
    }
    let held = s.sync(&[], 3);
    assert!(held.err().contains("6 would be removed"), "{}", held.err());
    assert!(held.err().contains("would remove: dora"), "{}", held.err());
    s.alerts
        .wait_for("\"event\":\"directory.sync_held\"", Duration::from_secs(20));
    // Nothing changed: dora still gets in.
    assert_eq!(s.world.gatehouse.ssh(dora, &["whoami"]).code(), 0);
    let status = s.gatehouse(&["directory", "status"]);
    assert!(
        status.out().contains("held: 6 would be removed"),
        "{}",
        status.out()
    );

    let accepted = s.sync(&["--accept"], 0);
    assert!(accepted.out().contains("6 removed"), "{}", accepted.out());
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.world.gatehouse.ssh(dora, &["whoami"]).code() == 0 {
        assert!(Instant::now() < deadline, "dora still gets in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, alert) = s
        .alerts
        .wait_for("\"event\":\"user.removed\"", Duration::from_secs(20));
    assert!(alert.contains("no longer in the directory"), "{alert}");
    assert_eq!(
        s.world.gatehouse.ssh(s.person("mona"), &["whoami"]).code(),
        0
    );
}

#[test]
fn an_approver_who_left_the_approvers_group_can_no_longer_approve() {
    let s = setup(&["dora", "lena"], "");
    s.ldap.modify(&format!(
        "dn: cn=ldap-leads,ou=groups,{}\nchangetype: modify\nadd: member\nmember: {}\n",
        slapd::BASE,
        slapd::person_dn("lena")
    ));
    s.sync_in_force();
    let (dora, lena) = (s.person("dora"), s.person("lena"));
    let request = |reason: &str| -> String {
        let out = s.world.gatehouse.ssh(
            dora,
            &[
                "request", "web-01", "--role", "web-ops", "--for", "1h", "--reason", reason,
            ],
        );
        assert_eq!(out.code(), 0, "{}", out.err());
        out.out().split_whitespace().nth(1).unwrap().to_owned()
    };
    let first = request("one");
    let ok = s.world.gatehouse.ssh(lena, &["approve", &first]);
    assert_eq!(ok.code(), 0, "{}", ok.err());
    s.ldap.modify(&format!(
        "dn: cn=ldap-leads,ou=groups,{}\nchangetype: modify\ndelete: member\nmember: {}\n",
        slapd::BASE,
        slapd::person_dn("lena")
    ));
    s.sync_in_force();
    let second = request("two");
    let refused = s.world.gatehouse.ssh(lena, &["approve", &second]);
    assert_eq!(refused.code(), 126, "{}{}", refused.out(), refused.err());
}

#[test]
fn a_name_in_both_the_policy_files_and_the_directory_fails_check() {
    let s = setup(&["dora"], "");
    let imposter_dir = tempfile::tempdir().unwrap();
    let imposter = common::people(imposter_dir.path(), &["alice"]).remove(0);
    s.ldap
        .add(&slapd::person("alice", 20_000, &[&imposter.public]));
    s.ldap.modify(&format!(
        "dn: cn=ldap-ops,ou=groups,{}\nchangetype: modify\nadd: member\nmember: {}\n",
        slapd::BASE,
        slapd::person_dn("alice")
    ));
    s.sync(&[], 0);
    let check = s.gatehouse(&["check"]);
    assert_eq!(check.code(), 1, "{}{}", check.out(), check.err());
    assert!(
        check.err().contains("user \"alice\" is defined at")
            && check
                .err()
                .contains("main.toml:1 and in the directory (uid=alice,ou=people"),
        "{}",
        check.err()
    );
    // The directory's alice gains nothing: her key does not log in.
    let out = s.world.gatehouse.ssh(&imposter, &["whoami"]);
    assert_eq!(out.code(), 255, "{}", out.out());
    assert_eq!(s.world.gatehouse.ssh(&s.alice, &["whoami"]).code(), 0);
    let show = s.gatehouse(&["directory", "show", "dora"]);
    assert_eq!(show.code(), 0, "{}", show.err());
    assert!(show.out().contains("ldap-ops -> ops"), "{}", show.out());
    assert!(
        show.out().contains("roles:  web-ops, web-self"),
        "{}",
        show.out()
    );
}

/// A deployment with no server running, for the operator's `gatehouse directory` commands:
/// its config has `directory` as the `[directory]` section.
fn offline(dir: &std::path::Path, directory: &str) -> common::Gatehouse {
    let (gh, _) = common::Gatehouse::prepare(dir, "");
    std::fs::write(
        dir.join("policies/main.toml"),
        "[[role]]\nname = \"ops\"\nmembers = [\"ops\"]\ntargets = [\"*\"]\nlogin = \"ops\"\napprovals = 0\n",
    )
    .unwrap();
    rewrite(&gh, directory);
    gh
}

/// Replaces the deployment's `[directory]` section (the rest of the config stays).
fn rewrite(gh: &common::Gatehouse, directory: &str) {
    let path = gh.dir.join("gatehouse.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let head = text.split("[directory]").next().unwrap().to_owned();
    std::fs::write(&path, format!("{head}[directory]\n{directory}")).unwrap();
}

fn directory_section(ldap: &Slapd, url: &str, extra: &str) -> String {
    format!(
        "url = \"{url}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\nbase_dn = \"ou=people,{}\"\n\
         group_base_dn = \"ou=groups,{}\"\ngroups = {{ ldap-ops = \"ops\" }}\n{extra}",
        slapd::SERVICE,
        ldap.password_file().display(),
        slapd::BASE,
        slapd::BASE,
    )
}

fn directory_cli(gh: &common::Gatehouse, args: &[&str]) -> common::Output {
    let mut all = vec!["directory"];
    all.extend_from_slice(args);
    run(gh.command(&all), b"", Duration::from_secs(60))
}

#[test]
fn the_directory_is_read_over_verified_tls_and_a_wrong_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    common::certs::ca(&certs, "ldap-ca");
    common::certs::ca(&certs, "other-ca");
    common::certs::server_cert(&certs, "ldap-ca");
    let dora = &common::people(tmp.path(), &["dora"])[0];
    let mut ldif = slapd::person("dora", 10_000, &[&dora.public]);
    ldif.push_str(&slapd::group("ldap-ops", &["dora"]));
    let ldap = Slapd::start_tls(&ldif, &certs);
    let ca = |name: &str| {
        format!(
            "ca_file = \"{}\"\n",
            certs.join(format!("{name}.pem")).display()
        )
    };

    let gh = offline(
        &tmp.path().join("bastion"),
        &directory_section(&ldap, &ldap.tls_url(), &ca("ldap-ca")),
    );
    let out = directory_cli(&gh, &["sync"]);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert!(out.out().contains("synced: 1 people"), "{}", out.out());

    // StartTLS on the plain port, verified against the same CA.
    rewrite(
        &gh,
        &directory_section(
            &ldap,
            &ldap.url(),
            &format!("starttls = true\n{}", ca("ldap-ca")),
        ),
    );
    let out = directory_cli(&gh, &["sync"]);
    assert_eq!(out.code(), 0, "{}{}", out.out(), out.err());
    assert!(out.out().contains("unchanged: 1 people"), "{}", out.out());

    // A server whose certificate the configured CA did not sign is refused, over either.
    for (url, extra) in [
        (ldap.tls_url(), ca("other-ca")),
        (ldap.url(), format!("starttls = true\n{}", ca("other-ca"))),
    ] {
        rewrite(&gh, &directory_section(&ldap, &url, &extra));
        let out = directory_cli(&gh, &["sync"]);
        assert_eq!(out.code(), 1, "{url}: {}{}", out.out(), out.err());
        assert!(
            out.err().contains("the directory could not be read")
                && out.err().to_lowercase().contains("certificate"),
            "{url}: {}",
            out.err()
        );
    }
    let status = directory_cli(&gh, &["status"]);
    assert!(
        status.out().contains("in force: 1 people"),
        "{}",
        status.out()
    );
    assert!(status.out().contains("failing since"), "{}", status.out());
}

#[test]
fn a_directory_that_hangs_times_out_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dora = &common::people(tmp.path(), &["dora"])[0];
    let mut ldif = slapd::person("dora", 10_000, &[&dora.public]);
    ldif.push_str(&slapd::group("ldap-ops", &["dora"]));
    let ldap = Slapd::start(&ldif);
    let gh = offline(
        &tmp.path().join("bastion"),
        &directory_section(&ldap, &ldap.url(), "timeout = \"2s\"\n"),
    );
    assert_eq!(directory_cli(&gh, &["sync"]).code(), 0);
    ldap.freeze();
    let started = Instant::now();
    let out = directory_cli(&gh, &["sync"]);
    let took = started.elapsed();
    ldap.thaw();
    assert_eq!(out.code(), 1, "{}{}", out.out(), out.err());
    assert!(
        out.err().contains("no complete answer within 2s"),
        "{}",
        out.err()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let show = directory_cli(&gh, &["show", "dora"]);
    assert_eq!(show.code(), 0, "{}{}", show.out(), show.err());
}
