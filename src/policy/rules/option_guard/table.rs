//! The option guard's built-in table: per program, the options refused in placeholder words.
//!
//! Kept apart from the matching engine so that adding a program or an option is a change to
//! data only. `GTFOBins` is the reference; entries err on the side of refusing.

use super::Why;

mod transfer;

/// Programs that run another program named in their arguments. When one of them is the command
/// word, the guard also applies the tables of the programs named after it; lint warns about
/// placeholders that let users choose what they run.
pub(in crate::policy::rules) const WRAPPERS: &[&str] = &[
    "sudo",
    "doas",
    "su",
    "runuser",
    "setpriv",
    "env",
    "nice",
    "ionice",
    "nohup",
    "timeout",
    "stdbuf",
    "setsid",
    "taskset",
    "chrt",
    "chroot",
    "flock",
    "unshare",
    "nsenter",
    "xargs",
    "watch",
    "time",
    "strace",
    "ltrace",
    "busybox",
    "command",
    "exec",
    "script",
    "systemd-run",
    "firejail",
    "bwrap",
    "ssh",
    "docker",
    "podman",
    "nerdctl",
    "kubectl",
];

/// One row of the built-in table.
pub(super) struct Row {
    pub(super) names: &'static [&'static str],
    pub(super) double_dash_ends_options: bool,
    pub(super) bare_first_word_is_options: bool,
    pub(super) denied: &'static [(Why, &'static [&'static str])],
}

impl Row {
    /// For programs that do not reliably treat `--` as the end of their options (or, like find,
    /// parse their expression after it): every later word is still checked.
    const fn options_after_double_dash(mut self) -> Row {
        self.double_dash_ends_options = false;
        self
    }

    /// For programs whose first argument is a bundle of short options even without a dash.
    const fn bare_first_word_is_options(mut self) -> Row {
        self.bare_first_word_is_options = true;
        self
    }
}

/// A row for a getopt-style program.
const fn row(
    names: &'static [&'static str],
    denied: &'static [(Why, &'static [&'static str])],
) -> Row {
    Row {
        names,
        double_dash_ends_options: true,
        bare_first_word_is_options: false,
        denied,
    }
}

const VI: &[(Why, &[&str])] = &[
    (
        Why::Escape,
        &[
            "+",
            "-c",
            "--cmd",
            "-S",
            "-s",
            "--remote",
            "--remote-silent",
            "--remote-wait",
            "--remote-wait-silent",
            "--remote-tab",
            "--remote-tab-silent",
            "--remote-tab-wait",
            "--remote-tab-wait-silent",
            "--remote-send",
            "--remote-expr",
            "--server",
            "--listen",
        ],
    ),
    (Why::Config, &["-u", "-U"]),
    (Why::Code, &["-l"]),
    (
        Why::Writes,
        &["-i", "-w", "-W", "-V", "--startuptime", "--log"],
    ),
];

const SHELLS: &[(Why, &[&str])] = &[
    (Why::Shell, &["-c", "-i", "-s"]),
    (Why::Config, &["--rcfile", "--init-file"]),
];

const AWK: &[(Why, &[&str])] = &[
    (
        Why::Code,
        &[
            "-f",
            "--file",
            "-E",
            "--exec",
            "-i",
            "--include",
            "-l",
            "--load",
            "-W",
        ],
    ),
    (
        Why::Writes,
        &[
            "-o",
            "--pretty-print",
            "-p",
            "--profile",
            "-d",
            "--dump-variables",
        ],
    ),
];

const CONTAINERS: &[(Why, &[&str])] = &[
    (
        Why::Remote,
        &["-H", "--host", "-c", "--context", "--url", "--connection"],
    ),
    (Why::Config, &["--config"]),
    (Why::Shell, &["--entrypoint"]),
    (
        Why::Host,
        &[
            "-v",
            "--volume",
            "--volumes-from",
            "--mount",
            "--privileged",
            "--pid",
            "--network",
            "--net",
            "--ipc",
            "--uts",
            "--userns",
            "--cgroupns",
            "--cgroup-parent",
            "--cap-add",
            "--device",
            "--device-cgroup-rule",
            "--security-opt",
            "--sysctl",
            "--runtime",
        ],
    ),
    (Why::Identity, &["-u", "--user", "--group-add"]),
    (Why::Writes, &["-o", "--output", "--cidfile", "--iidfile"]),
    (Why::Reads, &["--env-file", "--label-file", "--secret"]),
];

const COPY: &[(Why, &[&str])] = &[(
    Why::Writes,
    &[
        "-t",
        "--target-directory",
        "-S",
        "--suffix",
        "-b",
        "--backup",
    ],
)];

/// The built-in table. Each row names the programs it covers and, per kind of danger, the
/// spellings to refuse. `GTFOBins` is the reference; entries err on the side of refusing.
static LOCAL: &[Row] = &[
    // Pagers. Exec sessions without a pty never show a pager, but a role may give exec
    // sessions a pty, and `+cmd` runs at start-up either way.
    row(
        &["less"],
        &[
            (Why::Escape, &["+"]),
            (Why::Writes, &["-o", "--log-file", "-O", "--LOG-FILE"]),
            (
                Why::Config,
                &["-k", "--lesskey-file", "--lesskey-src", "--lesskey-content"],
            ),
        ],
    ),
    row(&["more", "most", "pg"], &[(Why::Escape, &["+"])]).options_after_double_dash(),
    row(
        &["man"],
        &[
            (
                Why::Shell,
                &[
                    "-P",
                    "--pager",
                    "-H",
                    "--html",
                    "--browser",
                    "-X",
                    "--gxditview",
                ],
            ),
            (Why::Config, &["-C", "--config-file"]),
            (Why::Reads, &["-l", "--local-file"]),
        ],
    ),
    // Editors.
    row(
        &[
            "vi", "vim", "view", "vimdiff", "rvim", "rview", "gvim", "gview", "evim", "ex", "nvim",
            "vimx",
        ],
        VI,
    ),
    row(
        &["nano", "pico"],
        &[
            (Why::Shell, &["-s", "--speller"]),
            (Why::Config, &["-f", "--rcfile"]),
            (Why::Writes, &["-B", "--backup", "-C", "--backupdir"]),
        ],
    ),
    row(
        &["emacs"],
        &[
            (
                Why::Code,
                &[
                    "--eval",
                    "-eval",
                    "-l",
                    "--load",
                    "-load",
                    "-f",
                    "--funcall",
                    "-funcall",
                    "--script",
                    "-script",
                    "-x",
                    "-L",
                    "--directory",
                ],
            ),
            (Why::Config, &["-u", "--user", "--init-directory"]),
        ],
    )
    .options_after_double_dash(),
    // Finding and archiving.
    row(
        &["find"],
        &[
            (Why::Shell, &["-exec", "-execdir", "-ok", "-okdir"]),
            (
                Why::Writes,
                &["-delete", "-fprint", "-fprint0", "-fprintf", "-fls"],
            ),
        ],
    )
    .options_after_double_dash(),
    row(
        &["tar"],
        &[
            (
                Why::Shell,
                &[
                    "--to-command",
                    "--checkpoint-action",
                    "--use-compress-program",
                    "-I",
                    "-F",
                    "--info-script",
                    "--new-volume-script",
                    "--rsh-command",
                    "--rmt-command",
                ],
            ),
            (
                Why::Writes,
                &["-P", "--absolute-names", "--index-file", "--volno-file"],
            ),
            (Why::Reads, &["-T", "--files-from", "-X", "--exclude-from"]),
        ],
    )
    .bare_first_word_is_options(),
    row(
        &["zip"],
        &[(Why::Shell, &["-T", "--test", "-TT", "--unzip-command"])],
    )
    .options_after_double_dash(),
    // Version control.
    row(
        &["git"],
        &[
            (
                Why::Config,
                &["-c", "--config-env", "-C", "--git-dir", "--work-tree"],
            ),
            (
                Why::Shell,
                &[
                    "--exec-path",
                    "--upload-pack",
                    "-u",
                    "--receive-pack",
                    "--exec",
                    "--template",
                    "-O",
                    "--open-files-in-pager",
                    "--web",
                ],
            ),
            // `--help` shows the manual page in a pager, after a subcommand too.
            (Why::Escape, &["-p", "--paginate", "--help"]),
            (Why::Writes, &["--output", "-o", "--output-directory"]),
            (Why::Remote, &["--remote"]),
        ],
    ),
    // systemd. Pagers are not started without a terminal; `--no-pager` is harmless. Subcommands
    // such as `edit`, `kill` or `set-environment` are operands: name them literally in rules.
    row(
        &["journalctl"],
        &[
            // Help is shown in a pager on a terminal.
            (Why::Escape, &["-h", "--help"]),
            (
                Why::Reads,
                &["-D", "--directory", "-i", "--file", "--root", "--image"],
            ),
            (
                Why::Writes,
                &[
                    "--cursor-file",
                    "--vacuum-size",
                    "--vacuum-time",
                    "--vacuum-files",
                    "--rotate",
                    "--flush",
                    "--sync",
                    "--relinquish-var",
                    "--smart-relinquish-var",
                    "--setup-keys",
                    "--update-catalog",
                ],
            ),
            (Why::Remote, &["-M", "--machine"]),
        ],
    ),
    row(
        &["systemctl"],
        &[
            // Help is shown in a pager on a terminal.
            (Why::Escape, &["-h", "--help"]),
            (Why::Remote, &["-H", "--host", "-M", "--machine"]),
            (Why::Writes, &["--root", "--image"]),
        ],
    ),
    // Cluster and container clients. `exec`, `cp`, `run`, `debug` and plugins are subcommands.
    row(
        &["kubectl"],
        &[
            (Why::Config, &["--kubeconfig"]),
            (
                Why::Remote,
                &[
                    "-s",
                    "--server",
                    "--context",
                    "--cluster",
                    "--insecure-skip-tls-verify",
                ],
            ),
            (
                Why::Identity,
                &[
                    "--token",
                    "--as",
                    "--as-group",
                    "--as-uid",
                    "--user",
                    "--username",
                    "--password",
                    "--certificate-authority",
                    "--client-certificate",
                    "--client-key",
                ],
            ),
            (Why::Writes, &["--cache-dir"]),
        ],
    ),
    row(&["docker", "podman", "nerdctl"], CONTAINERS),
    // Interpreters. Their program text is an operand the guard cannot judge; lint warns.
    row(&["awk", "gawk", "mawk", "nawk"], AWK),
    row(
        &["sed"],
        &[
            (Why::Writes, &["-i", "--in-place"]),
            (Why::Code, &["-f", "--file"]),
        ],
    ),
    row(&["python", "pypy"], &[(Why::Code, &["-c", "-m", "-i"])]),
    row(
        &["perl"],
        &[
            (Why::Code, &["-e", "-E", "-M", "-m", "-x", "-d", "-I"]),
            (Why::Writes, &["-i"]),
        ],
    ),
    row(
        &["ruby"],
        &[
            (Why::Code, &["-e", "-r", "-I", "-x", "-S"]),
            (Why::Writes, &["-i"]),
        ],
    ),
    row(
        &["node", "nodejs"],
        &[(
            Why::Code,
            &[
                "-e",
                "--eval",
                "-p",
                "--print",
                "-r",
                "--require",
                "--import",
                "--loader",
                "--experimental-loader",
                "-i",
                "--interactive",
            ],
        )],
    ),
    row(&["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"], SHELLS),
    row(
        &["gdb"],
        &[
            (
                Why::Code,
                &[
                    "-ex",
                    "--ex",
                    "-iex",
                    "--iex",
                    "-x",
                    "-ix",
                    "--eval-command",
                    "-eval-command",
                    "--init-eval-command",
                    "-init-eval-command",
                    "--command",
                    "-command",
                    "--init-command",
                    "-init-command",
                ],
            ),
            (Why::Host, &["-p", "--pid", "-pid"]),
        ],
    )
    .options_after_double_dash(),
];

/// Every row of the built-in table.
pub(super) fn builtin_rows() -> impl Iterator<Item = &'static Row> {
    [LOCAL, transfer::TRANSFER].into_iter().flatten()
}
