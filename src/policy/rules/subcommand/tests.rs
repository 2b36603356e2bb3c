//! Wildcard subcommands, over the words a wildcard can put before and at the subcommand.

use proptest::prelude::*;

use super::super::{AllowList, CommandRule, OptionGuard, tokenize};

fn list(rules: &[&str], pty: bool) -> AllowList {
    let rules = rules
        .iter()
        .map(|r| CommandRule::parse(r).unwrap_or_else(|e| panic!("{r:?}: {e}")))
        .collect();
    AllowList::new(rules, OptionGuard::builtin()).on_terminal(pty)
}

fn verdict_on(rule: &str, command: &str, pty: bool) -> Result<(), String> {
    let argv = tokenize(command.as_bytes()).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    list(&[rule], pty).check(&argv).map_err(|d| d.reason)
}

fn allowed(rule: &str, command: &str) -> bool {
    verdict_on(rule, command, false).is_ok()
}

#[test]
fn systemctl_wildcard_verbs() {
    let rule = "systemctl * nginx";
    for verb in [
        "status",
        "restart",
        "reload",
        "start",
        "stop",
        "is-active",
        "try-restart",
        "show",
    ] {
        assert!(allowed(rule, &format!("systemctl {verb} nginx")), "{verb}");
    }
    for verb in [
        "edit",
        "link",
        "enable",
        "disable",
        "mask",
        "set-environment",
        "import-environment",
        "unset-environment",
        "set-property",
        "daemon-reload",
        "isolate",
        "kill",
        "help",
        "poweroff",
        "revert",
        "",
        "Status",
    ] {
        let command = format!("systemctl '{verb}' nginx");
        assert!(!allowed(rule, &command), "{command}");
    }
    assert_eq!(
        verdict_on(rule, "systemctl edit nginx", false),
        Err(
            "subcommand \"edit\" of systemctl is not one a wildcard may supply (it supplies only \
             status, show, cat, is-active, is-enabled, is-failed, is-system-running, list-units, \
             list-unit-files, list-sockets, list-timers, list-jobs, list-dependencies, \
             list-automounts, list-paths, start, stop, restart, reload, try-restart, \
             reload-or-restart, try-reload-or-restart, force-reload, condrestart, reset-failed); \
             a rule must name it"
                .to_owned()
        )
    );
    // A literal verb is the author's choice.
    assert!(allowed("systemctl edit nginx", "systemctl edit nginx"));
}

#[test]
fn options_before_a_wildcard_subcommand_must_be_known_flags() {
    let rule = "systemctl *";
    assert!(allowed(rule, "systemctl --no-pager status nginx"));
    assert!(allowed(rule, "systemctl status -n 5 nginx"));
    // `-n` takes `edit` as its value: the verb is `nginx`… but it is not a known flag.
    assert!(!allowed(rule, "systemctl -n edit status"));
    assert!(!allowed(rule, "systemctl -- edit nginx"));
    let reason = verdict_on("kubectl *", "kubectl -n get exec pod", false)
        .err()
        .unwrap_or_default();
    assert_eq!(
        reason,
        "option \"-n\" before the kubectl subcommand is not accepted from a wildcard; put it \
         after the subcommand"
    );
    assert!(allowed("kubectl *", "kubectl get pods -n web"));
    assert!(allowed("kubectl -n web *", "kubectl -n web get pods"));
    assert!(!allowed(
        "kubectl -n web *",
        "kubectl -n web exec -it web-0 -- sh"
    ));
    assert!(!allowed(
        "kubectl --namespace web *",
        "kubectl --namespace web exec x"
    ));
}

#[test]
fn git_wildcard_subcommands() {
    let rule = "git -C /srv/app *";
    for command in [
        "git -C /srv/app log --oneline",
        "git -C /srv/app status",
        "git -C /srv/app --no-pager log",
        "git -C /srv/app show HEAD",
        "git -C /srv/app rev-parse HEAD",
    ] {
        assert!(allowed(rule, command), "{command}");
    }
    for sub in [
        "help log",
        "config core.pager",
        "commit -m x",
        "checkout main",
        "pull",
        "fetch",
        "push",
        "difftool",
        "instaweb",
        "submodule update",
        "lg",
        "stash",
        "am x",
        "gc",
        "archive HEAD",
        "-p log",
        "--paginate log",
        "--help",
        "-c core.pager=sh log",
        "--exec-path=/tmp log",
    ] {
        let command = format!("git -C /srv/app {sub}");
        assert!(!allowed(rule, &command), "{command}");
    }
    // git's own value-taking options before the subcommand, written in the rule.
    assert!(allowed(
        "git --git-dir /srv/app/.git *",
        "git --git-dir /srv/app/.git log"
    ));
    assert!(!allowed(
        "git --git-dir /srv/app/.git *",
        "git --git-dir /srv/app/.git config x"
    ));
}

#[test]
fn paging_subcommands_need_no_terminal_or_no_pager() {
    let rule = "git -C /srv/app *";
    assert!(verdict_on(rule, "git -C /srv/app log", true).is_err());
    assert!(verdict_on(rule, "git -C /srv/app --no-pager log", true).is_ok());
    assert!(verdict_on(rule, "git -C /srv/app status", true).is_ok());
    assert!(verdict_on("systemctl * nginx", "systemctl status nginx", true).is_err());
    assert!(
        verdict_on(
            "systemctl * nginx *",
            "systemctl status nginx --no-pager",
            true
        )
        .is_ok()
    );
    assert!(verdict_on("systemctl * nginx", "systemctl restart nginx", true).is_ok());
    let reason = verdict_on(rule, "git -C /srv/app log", true)
        .err()
        .unwrap_or_default();
    assert!(reason.contains("shows a pager on a terminal"), "{reason}");
}

#[test]
fn other_programs() {
    assert!(allowed("kubectl ?et *", "kubectl get pods"));
    assert!(!allowed("kubectl ?et *", "kubectl set image x"));
    assert!(allowed("docker * web", "docker logs web"));
    assert!(!allowed("docker * web", "docker exec web"));
    assert!(!allowed("docker *", "docker run --rm alpine"));
    assert!(allowed("helm * -n web", "helm status -n web"));
    assert!(!allowed("helm * x", "helm uninstall x"));
    assert!(allowed("apt * nginx", "apt show nginx"));
    assert!(!allowed("apt * nginx", "apt install nginx"));
    assert!(!allowed("apt * nginx", "apt edit-sources nginx"));
    assert!(!allowed("apt * nginx", "apt changelog nginx"));
    assert!(allowed("service nginx *", "service nginx status"));
    assert!(!allowed("service nginx *", "service nginx bogus"));
    assert!(allowed("service * status", "service sshd status"));
    assert!(allowed(
        "sudo -n systemctl * nginx",
        "sudo -n systemctl restart nginx"
    ));
    assert!(!allowed(
        "sudo -n systemctl * nginx",
        "sudo -n systemctl edit nginx"
    ));
}

proptest! {
    /// Whatever words a wildcard supplies to `systemctl *`, an allowed command's verb, read as
    /// systemctl reads it (the first word that is not an option or an option's value), is
    /// harmless.
    #[test]
    fn allowed_systemctl_commands_run_harmless_verbs(
        words in prop::collection::vec(prop::sample::select(vec![
            "-n", "5", "edit", "status", "--no-pager", "-l", "--", "-t", "service", "nginx",
            "link", "restart", "-H", "--lines", "-q", "--type=service", "-ln", "''",
        ]), 1..6)
    ) {
        let command = format!("systemctl {}", words.join(" "));
        let argv = tokenize(command.as_bytes()).unwrap_or_default();
        if list(&["systemctl *"], false).check(&argv).is_ok() {
            let mut value = false;
            let verb = argv[1..].iter().find(|w| {
                if std::mem::take(&mut value) { return false; }
                if w.starts_with('-') && w.len() > 1 && *w != "--" {
                    value = matches!(w.as_str(), "-n" | "--lines" | "-t" | "-H") || w.ends_with('n');
                    return false;
                }
                *w != "--"
            });
            if let Some(verb) = verb {
                prop_assert!(["status", "restart"].contains(&verb.as_str()), "{}", command);
            }
        }
    }
}
