//! Corpus cases on the option guard, per program named in the rules.

use super::{Case, allow, deny};

/// Cases on the option guard.
pub(super) fn cases() -> Vec<Case> {
    vec![
        // ---- systemctl: the guard on placeholder words.
        deny("systemctl: -H host", "systemctl status -H evil.example"),
        deny(
            "systemctl: attached -Hhost",
            "systemctl status -Hroot@evil.example",
        ),
        deny("systemctl: --host=", "systemctl status --host=evil.example"),
        deny(
            "systemctl: abbreviated --ho",
            "systemctl status --ho evil.example",
        ),
        deny(
            "systemctl: bundled -lH",
            "systemctl status -lH evil.example",
        ),
        deny("systemctl: --machine=", "systemctl status --machine=foo"),
        deny("systemctl: -M", "systemctl status -M foo"),
        deny("systemctl: --root=", "systemctl status --root=/tmp/x"),
        deny(
            "systemctl: option before the verb",
            "systemctl --host=evil status nginx",
        ),
        allow(
            "systemctl: --output=json is not in the table",
            "systemctl status --output=json nginx",
            &["systemctl", "status", "--output=json", "nginx"],
        ),
        allow(
            "systemctl: harmless flags",
            "systemctl status --no-pager -l nginx",
            &["systemctl", "status", "--no-pager", "-l", "nginx"],
        ),
        allow(
            "systemctl: -H after -- is a unit name",
            "systemctl status -- -H",
            &["systemctl", "status", "--", "-H"],
        ),
        // ---- A rule that names a wrapper: the wrapped program's table applies.
        allow(
            "wrapper rule: allowed",
            "timeout 10 systemctl status nginx",
            &["timeout", "10", "systemctl", "status", "nginx"],
        ),
        deny(
            "wrapper rule: wrapped -H",
            "timeout 10 systemctl status -H evil",
        ),
        deny(
            "wrapper rule: wrapped --host",
            "timeout 10 systemctl status --host=evil",
        ),
        deny(
            "wrapper rule: other duration",
            "timeout 5 systemctl status nginx",
        ),
        deny("wrapper rule: other program", "timeout 10 sh -c id"),
        // ---- journalctl: built-in table and the policy's deny_options.
        deny(
            "journalctl: --file=",
            "journalctl -u nginx --file=/etc/shadow",
        ),
        deny(
            "journalctl: --file value",
            "journalctl -u nginx --file /etc/shadow",
        ),
        deny(
            "journalctl: abbreviated --fi=",
            "journalctl -u nginx --fi=/etc/shadow",
        ),
        deny("journalctl: -D", "journalctl -u nginx -D /tmp/journal"),
        deny(
            "journalctl: attached -D",
            "journalctl -u nginx -D/tmp/journal",
        ),
        deny("journalctl: bundled -xeD", "journalctl -u nginx -xeD /tmp"),
        deny(
            "journalctl: -i (--file)",
            "journalctl -u nginx -i /etc/shadow",
        ),
        deny("journalctl: --root=", "journalctl -u nginx --root=/"),
        deny("journalctl: -M", "journalctl -u nginx -M other"),
        deny(
            "journalctl: --vacuum-size",
            "journalctl -u nginx --vacuum-size=1",
        ),
        deny("journalctl: --rotate", "journalctl -u nginx --rotate"),
        deny(
            "journalctl policy: second -u",
            "journalctl -u nginx -u sshd",
        ),
        deny(
            "journalctl policy: --unit=",
            "journalctl -u nginx --unit=sshd",
        ),
        deny(
            "journalctl policy: abbreviated --un=",
            "journalctl -u nginx --un=sshd",
        ),
        deny("journalctl policy: -t", "journalctl -u nginx -t sshd"),
        deny(
            "journalctl policy: SYSLOG_IDENTIFIER= match",
            "journalctl -u nginx SYSLOG_IDENTIFIER=sshd",
        ),
        deny(
            "journalctl policy: + disjunction",
            "journalctl -u nginx + _COMM=sshd",
        ),
        // CONSERVATIVE: `-ocat` is -o with the value "cat", but a bundle holding a denied letter
        // (`t`) is refused rather than parsed per program.
        deny(
            "journalctl policy: attached value holding a denied letter",
            "journalctl -u nginx -ocat",
        ),
        allow(
            "journalctl: attached value without denied letters",
            "journalctl -u nginx -ojson",
            &["journalctl", "-u", "nginx", "-ojson"],
        ),
        // After `--` an option is a match operand, and the rule's pinned unit admits no match.
        deny(
            "journalctl: after -- an option is a match operand",
            "journalctl -u nginx -- --file=/etc/shadow",
        ),
        // ---- tail: path globs.
        allow(
            "tail: allowed",
            "tail -n 100 /var/log/nginx/access.log",
            &["tail", "-n", "100", "/var/log/nginx/access.log"],
        ),
        deny(
            "tail: .. escapes the directory",
            "tail -n 5 /var/log/nginx/../../../etc/shadow",
        ),
        deny(
            "tail: .. then back with a .log name",
            "tail -n 5 /var/log/nginx/../nginx/access.log",
        ),
        deny("tail: . segment", "tail -n 5 /var/log/nginx/./access.log"),
        deny(
            "tail: empty segment",
            "tail -n 5 /var/log/nginx//access.log",
        ),
        deny(
            "tail: * does not cross /",
            "tail -n 5 /var/log/nginx/sub/access.log",
        ),
        deny(
            "tail: -f is an extra word",
            "tail -n 5 -f /var/log/nginx/access.log",
        ),
        deny(
            "tail: a second file",
            "tail -n 5 /var/log/nginx/access.log /etc/shadow",
        ),
        deny(
            "tail: rotated name",
            "tail -n 5 /var/log/nginx/access.log.1",
        ),
        deny("tail: relative path", "tail -n 5 var/log/nginx/access.log"),
        deny(
            "tail: other directory",
            "tail -n 5 /var/log/apache2/access.log",
        ),
        allow(
            "tail: a quoted * is a literal star",
            "tail -n 5 '/var/log/nginx/*.log'",
            &["tail", "-n", "5", "/var/log/nginx/*.log"],
        ),
        allow(
            "tail: ..log is a file name, not a dot segment",
            "tail -n 5 /var/log/nginx/..log",
            &["tail", "-n", "5", "/var/log/nginx/..log"],
        ),
        // ---- cat.
        allow(
            "cat: allowed",
            "cat /var/log/app/app.log",
            &["cat", "/var/log/app/app.log"],
        ),
        deny("cat: * does not cross /", "cat /var/log/app/2024/app.log"),
        deny(
            "cat: .. with a .log name",
            "cat /var/log/app/../../../etc/shadow.log",
        ),
        deny("cat: ./ and ..", "cat /var/log/app/.././app.log"),
        deny("cat: other file", "cat /etc/shadow"),
        deny("cat: an option", "cat -v /var/log/app/app.log"),
        // ---- grep.
        allow(
            "grep: allowed",
            "grep -r 'connection refused' /srv/app",
            &["grep", "-r", "connection refused", "/srv/app"],
        ),
        deny(
            "grep policy: --file=",
            "grep -r --file=/etc/shadow /srv/app",
        ),
        deny("grep policy: attached -f", "grep -r -f/etc/shadow /srv/app"),
        deny(
            "grep policy: abbreviated --fil=",
            "grep -r --fil=/etc/shadow /srv/app",
        ),
        deny("grep: other directory", "grep -r needle /etc"),
        deny("grep: extra path", "grep -r needle /srv/app /etc/shadow"),
        // POLICY: the placeholder may be `--`, which turns the literal /srv/app into the pattern;
        // grep -r then searches the working directory. Every rule word is still as written.
        allow(
            "grep: -- as the pattern word",
            "grep -r -- /srv/app",
            &["grep", "-r", "--", "/srv/app"],
        ),
        // ---- git.
        allow(
            "git: allowed",
            "git log --oneline -n 5",
            &["git", "log", "--oneline", "-n", "5"],
        ),
        deny("git: --output=", "git log --output=/tmp/x"),
        deny("git: abbreviated --outp=", "git log --outp=/tmp/x"),
        deny("git: -c config", "git log -c core.pager=sh"),
        deny("git: -c before the subcommand", "git -c core.pager=sh log"),
        deny("git: --exec-path", "git log --exec-path=/tmp"),
        deny("git: --paginate", "git log --paginate"),
        // CONSERVATIVE: after `log`, -p means "patch", but it is git's --paginate before it.
        deny("git: -p", "git log -p"),
        allow(
            "git: after -- an option is a path",
            "git log -- --output=/tmp/x",
            &["git", "log", "--", "--output=/tmp/x"],
        ),
        allow(
            "git: --format",
            "git log --format=%H",
            &["git", "log", "--format=%H"],
        ),
        // ---- find.
        allow(
            "find: allowed",
            "find /srv/app -name '*.conf'",
            &["find", "/srv/app", "-name", "*.conf"],
        ),
        deny("find: -exec", r"find /srv/app -name x -exec sh -c id \;"),
        deny(
            "find: -exec with a bare ;",
            "find /srv/app -name x -exec id ;",
        ),
        deny("find: -execdir", "find /srv/app -name x -execdir id +"),
        deny(
            "find: abbreviated -exe",
            r"find /srv/app -name x -exe id \;",
        ),
        deny("find: -ok", r"find /srv/app -name x -ok id \;"),
        deny("find: -delete", "find /srv/app -name x -delete"),
        deny("find: -fprint", "find /srv/app -name x -fprint /tmp/x"),
        deny(
            "find: -- does not end find's expression",
            r"find /srv/app -name x -- -exec id \;",
        ),
        deny("find: other root", "find / -name shadow"),
        deny("find: .. on the root", "find /srv/app/.. -name x"),
        allow(
            "find: -o is not -ok",
            "find /srv/app -name x -o -name y",
            &["find", "/srv/app", "-name", "x", "-o", "-name", "y"],
        ),
        // ---- ls.
        allow("ls: bare", "ls", &["ls"]),
        allow("ls: options", "ls -la /etc", &["ls", "-la", "/etc"]),
        allow("ls: -- then a dash word", "ls -- -la", &["ls", "--", "-la"]),
        // ---- less: flags before the file (`-*`), and a trailing star after it.
        allow(
            "less: a flag before the file",
            "less -S /var/log/syslog",
            &["less", "-S", "/var/log/syslog"],
        ),
        deny(
            "less: -o attached before the file",
            "less -ox.log /var/log/syslog",
        ),
        deny(
            "less: --log-file= before the file",
            "less --log-file=x.log /var/log/syslog",
        ),
        deny(
            "less: abbreviated --log= before the file",
            "less --log=x.log /var/log/syslog",
        ),
        deny("less: -k before the file", "less -kkeys /var/log/syslog"),
        deny(
            "less: --lesskey-src= before the file",
            "less --lesskey-src=keys /var/log/syslog",
        ),
        deny("less: -O bundled", "less -SOx.log /var/log/syslog"),
        // less reads a `+` inside a bundle of options as the start of a +command:
        // `less -N+!cmd FILE` runs cmd once the file is shown on a terminal (checked with less
        // 590; an exec session has a terminal when the role sets exec_pty), so a `+` anywhere in
        // a bundle counts, not only at the start of a word.
        deny(
            "less: +command inside a flag bundle",
            "less -N+!sh /var/log/syslog",
        ),
        allow(
            "less: after the file",
            "less -R /var/log/nginx/error.log",
            &["less", "-R", "/var/log/nginx/error.log"],
        ),
        // CONSERVATIVE: less stops reading options at its first file name (less 590), so the
        // words after it are file names; the guard refuses option-like ones anyway.
        deny(
            "less: +!sh after the file",
            "less -R /var/log/nginx/error.log +!sh",
        ),
        deny(
            "less: -o/tmp/x after the file",
            "less -R /var/log/nginx/error.log -o/tmp/x",
        ),
        deny(
            "less: --log-file= after the file",
            "less -R /var/log/nginx/error.log --log-file=/tmp/x",
        ),
        allow(
            "less: after -- +!sh is a file name",
            "less -R /var/log/nginx/error.log -- +!sh",
            &["less", "-R", "/var/log/nginx/error.log", "--", "+!sh"],
        ),
        // ---- curl with a trailing star.
        allow(
            "curl: allowed",
            "curl -sS https://status.internal/health -m 5",
            &["curl", "-sS", "https://status.internal/health", "-m", "5"],
        ),
        deny(
            "curl: -o",
            "curl -sS https://status.internal/health -o /tmp/x",
        ),
        deny(
            "curl: --output=",
            "curl -sS https://status.internal/health --output=/tmp/x",
        ),
        deny(
            "curl: abbreviated --outp",
            "curl -sS https://status.internal/health --outp /tmp/x",
        ),
        deny(
            "curl: bundled and attached -fso/tmp/x",
            "curl -sS https://status.internal/health -fso/tmp/x",
        ),
        deny("curl: -O", "curl -sS https://status.internal/health -O"),
        deny(
            "curl: -K config",
            "curl -sS https://status.internal/health -K /tmp/curlrc",
        ),
        deny(
            "curl: -T upload",
            "curl -sS https://status.internal/health -T /etc/shadow",
        ),
        allow(
            "curl: after -- -o is a URL",
            "curl -sS https://status.internal/health -- -o",
            &["curl", "-sS", "https://status.internal/health", "--", "-o"],
        ),
        // `-d @FILE`, `--data-binary @FILE` and `-F name=@FILE` send a local file (GTFOBins
        // "file upload" for curl), like -T/--upload-file.
        deny(
            "curl: -d @file sends a file",
            "curl -sS https://status.internal/health -d @/etc/shadow",
        ),
        deny(
            "curl: --data-binary @file sends a file",
            "curl -sS https://status.internal/health --data-binary @/etc/shadow",
        ),
        deny(
            "curl: -F name=@file sends a file",
            "curl -sS https://status.internal/health -F f=@/etc/shadow",
        ),
        // `-H @FILE` reads headers from a file (sent, and echoed by -v) and `-w @FILE`
        // reads the write-out format from a file and prints it: both show a local file's
        // contents to the user (checked with curl 7.88).
        deny(
            "curl: -v -H @file shows a file",
            "curl -sS https://status.internal/health -v -H @/etc/shadow",
        ),
        deny(
            "curl: -w @file prints a file",
            "curl -sS https://status.internal/health -w @/etc/shadow",
        ),
        // POLICY: a trailing * on curl admits further URLs, file:// included; only options are
        // guarded (lint warns about this rule).
        allow(
            "curl: a second URL",
            "curl -sS https://status.internal/health file:///etc/shadow",
            &[
                "curl",
                "-sS",
                "https://status.internal/health",
                "file:///etc/shadow",
            ],
        ),
        // ---- tar with a trailing star.
        allow(
            "tar: list",
            "tar -tzf /srv/backups/nightly.tgz",
            &["tar", "-tzf", "/srv/backups/nightly.tgz"],
        ),
        allow(
            "tar: list a member",
            "tar -tzf /srv/backups/nightly.tgz etc/app.conf",
            &["tar", "-tzf", "/srv/backups/nightly.tgz", "etc/app.conf"],
        ),
        deny(
            "tar: --to-command=",
            "tar -tzf /srv/backups/nightly.tgz --to-command=sh",
        ),
        deny(
            "tar: abbreviated --to-c=",
            "tar -tzf /srv/backups/nightly.tgz --to-c=sh",
        ),
        deny(
            "tar: --use-compress-program=",
            "tar -tzf /srv/backups/nightly.tgz --use-compress-program=sh",
        ),
        deny("tar: -I", "tar -tzf /srv/backups/nightly.tgz -I sh"),
        deny(
            "tar: --checkpoint-action=exec=",
            "tar -tzf /srv/backups/nightly.tgz --checkpoint-action=exec=sh",
        ),
        // CONSERVATIVE: --checkpoint is a prefix of --checkpoint-action.
        deny(
            "tar: --checkpoint",
            "tar -tzf /srv/backups/nightly.tgz --checkpoint=1",
        ),
        deny(
            "tar: --rsh-command=",
            "tar -tzf /srv/backups/nightly.tgz --rsh-command=/bin/sh",
        ),
        // `-T FILE` (--files-from) reads member names from any file, and tar reports each
        // one missing from the archive, line by line, on stderr (checked with GNU tar 1.34).
        deny(
            "tar: -T reads names from a file",
            "tar -tzf /srv/backups/nightly.tgz -T /etc/shadow",
        ),
        deny(
            "tar: --files-from= reads names from a file",
            "tar -tzf /srv/backups/nightly.tgz --files-from=/etc/shadow",
        ),
        allow(
            "tar: after -- an option is a member name",
            "tar -tzf /srv/backups/nightly.tgz -- --to-command=sh",
            &[
                "tar",
                "-tzf",
                "/srv/backups/nightly.tgz",
                "--",
                "--to-command=sh",
            ],
        ),
        deny(
            "tar: .. in the archive path",
            "tar -tzf /srv/backups/../../etc/x.tgz",
        ),
    ]
}
