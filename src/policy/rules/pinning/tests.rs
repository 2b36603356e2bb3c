//! Pinned scopes, over every spelling the tokeniser and the guard's readers accept.

use proptest::prelude::*;

use super::super::{AllowList, CommandRule, OptionGuard, tokenize};

fn list(rules: &[&str]) -> AllowList {
    let rules = rules
        .iter()
        .map(|r| CommandRule::parse(r).unwrap_or_else(|e| panic!("{r:?}: {e}")))
        .collect();
    AllowList::new(rules, OptionGuard::builtin())
}

fn verdict(rules: &[&str], command: &str) -> Result<(), String> {
    let argv = tokenize(command.as_bytes()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    list(rules).check(&argv).map_err(|d| d.reason)
}

fn allowed(rule: &str, command: &str) -> bool {
    verdict(&[rule], command).is_ok()
}

/// Every way a word can give option `short` (a letter) or `long` (a name) with `value`.
fn spellings(short: Option<char>, long: &str, value: &str) -> Vec<String> {
    let mut out = vec![
        format!("--{long} {value}"),
        format!("--{long}={value}"),
        format!("'--{long}' {value}"),
        format!("\"--{long}={value}\""),
        format!("--{long}\\={value}"),
    ];
    // GNU-style abbreviations, down to the first letter.
    for len in 1..long.len() {
        out.push(format!("--{}={value}", &long[..len]));
    }
    if let Some(c) = short {
        out.extend([
            format!("-{c} {value}"),
            format!("-{c}{value}"),
            format!("-{c}={value}"),
            format!("-q{c} {value}"),
            format!("-{c}'{value}'"),
            format!("'-{c}' {value}"),
        ]);
    }
    out
}

#[test]
fn kubectl_namespace_stays_pinned() {
    let rule = "kubectl describe pod -n web *";
    assert!(allowed(rule, "kubectl describe pod -n web web-0"));
    assert!(allowed(
        rule,
        "kubectl describe pod -n web web-0 --show-events=false"
    ));
    for words in spellings(Some('n'), "namespace", "kube-system") {
        let command = format!("kubectl describe pod -n web web-0 {words}");
        assert!(!allowed(rule, &command), "{command}");
    }
    for extra in [
        "-A",
        "--all-namespaces",
        "--all-n",
        "-qA",
        "--kubeconfig /tmp/k",
        "--kubeconfig=/tmp/k",
        "--kubec=/tmp/k",
        "--context prod",
        "--cluster=other",
        "-s https://evil",
        "--server=https://evil",
        "--user admin",
        "--token=x",
        "--raw /api/v1/secrets",
    ] {
        let command = format!("kubectl describe pod -n web web-0 {extra}");
        assert!(!allowed(rule, &command), "{command}");
    }
    let reason = verdict(
        &[rule],
        "kubectl describe pod -n web --namespace=kube-system x",
    )
    .err()
    .unwrap_or_default();
    assert_eq!(
        reason,
        "option \"--namespace\" of kubectl would give the namespace again, which the rule pins \
         with \"-n web\"; word 6 is \"--namespace=kube-system\""
    );
    let reason = verdict(&[rule], "kubectl describe pod -n web x -A")
        .err()
        .unwrap_or_default();
    assert!(reason.contains("would widen the namespace"), "{reason}");
}

#[test]
fn attached_pins_count_and_unpinned_rules_are_free() {
    assert!(!allowed(
        "kubectl get pods --namespace=web *",
        "kubectl get pods --namespace=web -n x"
    ));
    assert!(!allowed(
        "kubectl get pods -nweb *",
        "kubectl get pods -nweb -A"
    ));
    // The value comes from a wildcard: nothing is pinned.
    assert!(allowed(
        "kubectl get pods -n * *",
        "kubectl get pods -n a -n b"
    ));
    assert!(allowed("kubectl get pods *", "kubectl get pods -A"));
}

#[test]
fn journalctl_unit_and_matches_stay_pinned() {
    let rule = "journalctl -u nginx *";
    for command in [
        "journalctl -u nginx",
        "journalctl -u nginx --since today -n 50 --no-pager",
        "journalctl -u nginx -n 50",
        "journalctl -u nginx -b -1",
        "journalctl -u nginx -o json -p err",
        "journalctl -u nginx --since=yesterday --until=now",
    ] {
        assert!(allowed(rule, command), "{command}");
    }
    for words in spellings(Some('u'), "unit", "sshd") {
        let command = format!("journalctl -u nginx {words}");
        assert!(!allowed(rule, &command), "{command}");
    }
    for extra in [
        "_PID=1",
        "_SYSTEMD_UNIT=sshd.service",
        "+ _COMM=sshd",
        "-- _PID=1",
        "/usr/bin/sshd",
        "-n _PID=1",
        "-b _PID=1",
        "-t sshd",
        "--identifier=sshd",
        "--user-unit=x",
        "-D /tmp/j",
        "--directory=/tmp/j",
        "--file=/etc/shadow",
        "-M other",
        "--machine=other",
        "--root=/",
        "-m",
        "--merge",
        "--namespace=*",
    ] {
        let command = format!("journalctl -u nginx {extra}");
        assert!(!allowed(rule, &command), "{command}");
    }
    let reason = verdict(&[rule], "journalctl -u nginx _PID=1")
        .err()
        .unwrap_or_default();
    assert!(reason.contains("would add another match"), "{reason}");
    // A literal match expression pins as well.
    assert!(!allowed(
        "journalctl _SYSTEMD_UNIT=nginx.service *",
        "journalctl _SYSTEMD_UNIT=nginx.service _PID=1"
    ));
}

#[test]
fn systemctl_units_and_manager_stay_pinned() {
    let rule = "systemctl restart nginx *";
    assert!(allowed(rule, "systemctl restart nginx --no-block"));
    for extra in [
        "sshd",
        "-- sshd",
        "--user",
        "--global",
        "-H host",
        "--host=x",
        "-M m",
        "--root=/x",
    ] {
        let command = format!("systemctl restart nginx {extra}");
        assert!(!allowed(rule, &command), "{command}");
    }
    let reason = verdict(&[rule], "systemctl restart nginx sshd")
        .err()
        .unwrap_or_default();
    assert_eq!(
        reason,
        "word 4 \"sshd\" would add another unit to the one the rule pins with \"nginx\""
    );
    // The verb from a wildcard is not a unit.
    assert!(allowed("systemctl * nginx", "systemctl restart nginx"));
    assert!(!allowed(
        "systemctl * nginx *",
        "systemctl restart nginx sshd"
    ));
}

#[test]
fn git_repository_stays_pinned() {
    let rule = "git -C /srv/app *";
    assert!(allowed(rule, "git -C /srv/app log --oneline -n 5"));
    for extra in [
        "-C / log",
        "--git-dir=/etc log",
        "--work-tree=/ status",
        "--bare log",
        "log --no-index /etc/shadow /dev/null",
        "blame --contents /etc/shadow x",
        "--namespace=x log",
    ] {
        let command = format!("git -C /srv/app {extra}");
        assert!(!allowed(rule, &command), "{command}");
    }
}

#[test]
fn docker_container_and_daemon_stay_pinned() {
    let rule = "docker logs web *";
    assert!(allowed(rule, "docker logs web --tail 50"));
    assert!(allowed(rule, "docker logs web --since=1h -f"));
    assert!(!allowed(rule, "docker logs web db"));
    assert!(!allowed(rule, "docker logs web -H tcp://x"));
    assert!(!allowed("docker restart web *", "docker restart web db"));
}

#[test]
fn wrappers_keep_the_pins_of_the_wrapped_program() {
    let rule = "timeout 10 kubectl get pods -n web *";
    assert!(allowed(rule, "timeout 10 kubectl get pods -n web -o wide"));
    assert!(!allowed(rule, "timeout 10 kubectl get pods -n web -A"));
}

#[test]
fn describe_names_what_is_pinned() {
    let rule = CommandRule::parse("kubectl logs -n web -c app *").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rule.pinned(),
        ["namespace (\"-n web\")", "container (\"-c app\")"]
    );
    let rule = CommandRule::parse("ls *").unwrap_or_else(|e| panic!("{e}"));
    assert!(rule.pinned().is_empty());
}

/// Tokens from which wildcard words are built: option letters and names of every scope, values,
/// quotes, `=`, `--` and the like.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "-",
        "--",
        "n",
        "namespace",
        "name",
        "A",
        "all-namespaces",
        "kubeconfig",
        "context",
        "server",
        "s",
        "raw",
        "=",
        "kube-system",
        "web",
        "'",
        "\"",
        "q",
        "o",
        "wide",
        "x",
        "\\",
    ])
}

proptest! {
    /// Whatever words a wildcard supplies, a command the rule allows never names another
    /// namespace, all of them, or another cluster, however spelt: checked against a reading
    /// of the words that is independent of the checks (any word, after quote removal, that
    /// starts with a prefix of one of those options).
    #[test]
    fn allowed_kubectl_commands_keep_the_namespace(
        words in prop::collection::vec(prop::collection::vec(token(), 1..5), 0..4)
    ) {
        let tail: Vec<String> = words.iter().map(|w| w.concat()).collect();
        let command = format!("kubectl get pods -n web {}", tail.join(" "));
        let Ok(argv) = tokenize(command.as_bytes()) else { return Ok(()) };
        if list(&["kubectl get pods -n web *"]).check(&argv).is_ok() {
            let mut ended = false;
            for word in &argv[5..] {
                if word == "--" { ended = true; }
                if ended { continue; }
                if let Some(name) = word.strip_prefix("--") {
                    let name = name.split('=').next().unwrap_or_default();
                    for long in ["namespace", "all-namespaces", "kubeconfig", "context", "server", "raw"] {
                        prop_assert!(name.is_empty() || !long.starts_with(name), "{command}");
                    }
                } else if let Some(letters) = word.strip_prefix('-') {
                    prop_assert!(!letters.contains(['n', 'A', 's']), "{command}");
                }
            }
        }
    }

    /// Journal commands a pinned rule allows add no operand: every word is an option, the
    /// value of one, or a number after -n/-b.
    #[test]
    fn allowed_journalctl_commands_add_no_match(
        words in prop::collection::vec(prop::sample::select(vec![
            "-n", "50", "-b", "-1", "_PID=1", "+", "--", "-u", "sshd", "--since", "today",
            "-o", "json", "--unit=x", "-x", "-e", "/usr/bin/sshd", "--no-pager", "-nu", "-S",
        ]), 0..6)
    ) {
        let command = format!("journalctl -u nginx {}", words.join(" "));
        let argv = tokenize(command.as_bytes()).unwrap_or_default();
        if list(&["journalctl -u nginx *"]).check(&argv).is_ok() {
            for (i, word) in argv.iter().enumerate().skip(3) {
                let before = argv[i - 1].as_str();
                let value = matches!(before, "--since" | "-o" | "-S")
                    || (matches!(before, "-n" | "-b") && word.trim_start_matches(['-', '+']).chars().all(|c| c.is_ascii_digit()));
                let option = word.starts_with('-') && !word.contains('u');
                prop_assert!(value || option, "{command}");
                if !value && word == "--" {
                    // Every word after it would be a match: none may follow.
                    prop_assert_eq!(i + 1, argv.len(), "{}", command);
                }
            }
        }
    }
}
