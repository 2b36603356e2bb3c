//! Cases aimed at the three ways a rule could be read more widely than it is written: pinned
//! scopes re-specified or stepped out of by wildcard words, wildcard subcommands that reach
//! more than harmless ones, and rules that hand over a program (only acknowledged ones load).

use super::{Case, allow, deny};

/// The corpus's cases for the three classes.
pub(super) fn cases() -> Vec<Case> {
    vec![
        // ---- Pinned scope: kubectl's namespace, in every spelling, and the options that
        // step outside it.
        allow(
            "pinned: kubectl in its namespace",
            "kubectl describe pod -n web web-0",
            &["kubectl", "describe", "pod", "-n", "web", "web-0"],
        ),
        allow(
            "pinned: kubectl with harmless flags",
            "kubectl get pods -n web -o wide --show-labels",
            &[
                "kubectl",
                "get",
                "pods",
                "-n",
                "web",
                "-o",
                "wide",
                "--show-labels",
            ],
        ),
        deny(
            "pinned: --namespace=",
            "kubectl describe pod -n web web-0 --namespace=kube-system",
        ),
        deny(
            "pinned: --namespace value",
            "kubectl describe pod -n web web-0 --namespace kube-system",
        ),
        deny(
            "pinned: second -n",
            "kubectl describe pod -n web web-0 -n kube-system",
        ),
        deny(
            "pinned: attached -n",
            "kubectl describe pod -n web web-0 -nkube-system",
        ),
        deny(
            "pinned: -n=",
            "kubectl describe pod -n web web-0 -n=kube-system",
        ),
        deny(
            "pinned: abbreviated --names=",
            "kubectl describe pod -n web web-0 --names=kube-system",
        ),
        deny(
            "pinned: quoted --namespace",
            "kubectl describe pod -n web web-0 '--name''space'=kube-system",
        ),
        deny("pinned: -A", "kubectl get pods -n web -A"),
        deny("pinned: bundled -wA", "kubectl get pods -n web -wA"),
        deny(
            "pinned: --all-namespaces",
            "kubectl get pods -n web --all-namespaces",
        ),
        deny(
            "pinned: --kubeconfig",
            "kubectl describe pod -n web web-0 --kubeconfig /tmp/k",
        ),
        deny(
            "pinned: --context",
            "kubectl describe pod -n web web-0 --context=prod",
        ),
        deny(
            "pinned: --server",
            "kubectl describe pod -n web web-0 -s https://evil.example",
        ),
        deny(
            "pinned: --raw",
            "kubectl get pods -n web --raw /api/v1/secrets",
        ),
        deny("pinned: --token", "kubectl get pods -n web --token=abc"),
        // ---- Pinned scope: journalctl's unit, and every way of adding a match.
        allow(
            "pinned: journalctl -n with a separate count",
            "journalctl -u nginx -n 50",
            &["journalctl", "-u", "nginx", "-n", "50"],
        ),
        allow(
            "pinned: journalctl -b -1",
            "journalctl -u nginx -b -1 -o json",
            &["journalctl", "-u", "nginx", "-b", "-1", "-o", "json"],
        ),
        deny("pinned: journal match _PID=1", "journalctl -u nginx _PID=1"),
        deny(
            "pinned: journal match after --",
            "journalctl -u nginx -- _SYSTEMD_UNIT=sshd.service",
        ),
        deny(
            "pinned: journal match hidden after -n",
            "journalctl -u nginx -n _PID=1",
        ),
        deny(
            "pinned: journal path match",
            "journalctl -u nginx /usr/sbin/sshd",
        ),
        deny("pinned: journal --merge", "journalctl -u nginx --merge"),
        deny("pinned: journal -m", "journalctl -u nginx -m"),
        deny(
            "pinned: journal --namespace",
            "journalctl -u nginx --namespace=audit",
        ),
        // ---- Pinned scope: systemctl's unit after a wildcard verb.
        deny(
            "pinned: another unit after the pinned one",
            "systemctl restart app.service sshd.service",
        ),
        deny(
            "pinned: systemctl --user",
            "systemctl restart app.service --user",
        ),
        deny(
            "pinned: systemctl -H in a bundle",
            "systemctl restart app.service -qH host",
        ),
        allow(
            "pinned: systemctl harmless flag after the unit",
            "systemctl restart app.service --no-block",
            &["systemctl", "restart", "app.service", "--no-block"],
        ),
        // ---- Pinned scope: git's repository.
        allow(
            "pinned: git in its repository",
            "git -C /srv/app log --oneline -n 5",
            &["git", "-C", "/srv/app", "log", "--oneline", "-n", "5"],
        ),
        deny("pinned: git -C again", "git -C /srv/app -C / log"),
        deny(
            "pinned: git --git-dir",
            "git -C /srv/app --git-dir=/etc log",
        ),
        deny(
            "pinned: git --work-tree",
            "git -C /srv/app --work-tree=/ status",
        ),
        deny(
            "pinned: git diff --no-index",
            "git -C /srv/app diff --no-index /etc/shadow /dev/null",
        ),
        deny(
            "pinned: git blame --contents",
            "git -C /srv/app blame --contents /etc/shadow README",
        ),
        // ---- Wildcard subcommands: systemctl.
        allow(
            "subcommand: systemctl restart",
            "systemctl restart app.service",
            &["systemctl", "restart", "app.service"],
        ),
        allow(
            "subcommand: systemctl is-active",
            "systemctl is-active app.service",
            &["systemctl", "is-active", "app.service"],
        ),
        allow(
            "subcommand: systemctl reload",
            "systemctl reload app.service",
            &["systemctl", "reload", "app.service"],
        ),
        deny("subcommand: systemctl edit", "systemctl edit app.service"),
        deny("subcommand: systemctl link", "systemctl link app.service"),
        deny(
            "subcommand: systemctl enable",
            "systemctl enable app.service",
        ),
        deny(
            "subcommand: systemctl set-environment",
            "systemctl set-environment app.service",
        ),
        deny(
            "subcommand: systemctl import-environment",
            "systemctl import-environment app.service",
        ),
        deny("subcommand: systemctl help", "systemctl help app.service"),
        deny(
            "subcommand: systemctl empty verb",
            "systemctl '' app.service",
        ),
        deny(
            "subcommand: systemctl quoted edit",
            "systemctl 'ed'it app.service",
        ),
        // ---- Wildcard subcommands: git.
        allow(
            "subcommand: git status",
            "git -C /srv/app status",
            &["git", "-C", "/srv/app", "status"],
        ),
        allow(
            "subcommand: git --no-pager show",
            "git -C /srv/app --no-pager show HEAD",
            &["git", "-C", "/srv/app", "--no-pager", "show", "HEAD"],
        ),
        deny("subcommand: git help", "git -C /srv/app help log"),
        deny("subcommand: git --help", "git -C /srv/app --help"),
        deny("subcommand: git log --help", "git -C /srv/app log --help"),
        deny("subcommand: git log --he", "git -C /srv/app log --he"),
        deny(
            "subcommand: systemctl --help",
            "systemctl restart app.service --help",
        ),
        deny(
            "subcommand: git config",
            "git -C /srv/app config core.pager sh",
        ),
        deny("subcommand: git alias", "git -C /srv/app lg"),
        deny("subcommand: git commit", "git -C /srv/app commit -m x"),
        deny(
            "subcommand: git fetch (hooks, remote)",
            "git -C /srv/app fetch",
        ),
        deny("subcommand: git difftool", "git -C /srv/app difftool"),
        deny(
            "subcommand: git -c before it",
            "git -C /srv/app -c core.pager=sh log",
        ),
        deny("subcommand: git -p before it", "git -C /srv/app -p log"),
        deny(
            "subcommand: git value option before it",
            "git -C /srv/app --namespace x log",
        ),
        // ---- Wildcard subcommands: kubectl.
        deny(
            "subcommand: kubectl exec through a pinned namespace rule",
            "kubectl -n web exec web-0 -- sh",
        ),
        allow(
            "subcommand: kubectl get after a pinned namespace",
            "kubectl -n web get pods",
            &["kubectl", "-n", "web", "get", "pods"],
        ),
        deny("subcommand: kubectl edit", "kubectl -n web edit deploy/web"),
        deny(
            "subcommand: kubectl plugin",
            "kubectl -n web krew install x",
        ),
        // ---- Acknowledged hand-over: runs as written, nothing wider.
        allow(
            "handover: the acknowledged rule runs",
            "vim /etc/motd",
            &["vim", "/etc/motd"],
        ),
        deny("handover: not another file", "vim /etc/passwd"),
        deny("handover: no extra words", "vim /etc/motd -c '!sh'"),
    ]
}

/// The audit lines of `session.started` events that carry an acknowledged-unsafe rule: waits
/// (briefly) for the bastion's audit writer, which batches.
pub(super) fn unsafe_session_lines(audit: &std::path::Path, want: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\":\"session.started\"") && l.contains("unsafe_rules"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= want || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
