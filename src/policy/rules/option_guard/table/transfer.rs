//! The built-in table, continued: programs that copy, transfer and write files, and wrappers
//! that run other programs.

use super::super::Why;
use super::{COPY, Row, row};

/// Rows for copying, transfer, writing and wrapping programs.
pub(super) static TRANSFER: &[Row] = &[
    // Copying and transfer.
    row(
        &["rsync"],
        &[
            (
                Why::Shell,
                &["-e", "--rsh", "--rsync-path", "-M", "--remote-option"],
            ),
            (Why::Config, &["--config"]),
            (Why::Host, &["--daemon"]),
            (
                Why::Writes,
                &["--write-batch", "--only-write-batch", "--log-file"],
            ),
            (Why::Reads, &["--read-batch", "--password-file"]),
        ],
    ),
    row(
        &["ssh"],
        &[
            (Why::Config, &["-o", "-F"]),
            (
                Why::Remote,
                &[
                    "-J", "-L", "-R", "-D", "-W", "-w", "-X", "-Y", "-S", "-M", "-O",
                ],
            ),
            (Why::Writes, &["-E"]),
            (Why::Identity, &["-i", "-A"]),
            (Why::Code, &["-I"]),
        ],
    ),
    row(
        &["scp"],
        &[
            (Why::Config, &["-o", "-F"]),
            (Why::Shell, &["-S", "-D"]),
            (Why::Remote, &["-J"]),
            (Why::Identity, &["-i"]),
        ],
    ),
    row(
        &["sftp"],
        &[
            (Why::Config, &["-o", "-F"]),
            (Why::Shell, &["-S", "-D", "-b"]),
            (Why::Remote, &["-J"]),
            (Why::Identity, &["-i"]),
        ],
    ),
    row(
        &["curl"],
        &[
            (
                Why::Writes,
                &[
                    "-o",
                    "--output",
                    "-O",
                    "--remote-name",
                    "--remote-name-all",
                    "-J",
                    "--remote-header-name",
                    "--output-dir",
                    "--create-dirs",
                    "-D",
                    "--dump-header",
                    "--trace",
                    "--trace-ascii",
                    "-c",
                    "--cookie-jar",
                    "--libcurl",
                    "--etag-save",
                    "--hsts",
                    "--alt-svc",
                    "--stderr",
                ],
            ),
            (Why::Config, &["-K", "--config"]),
            // Each of these takes `@file` and sends, prints or expands that file's contents.
            (
                Why::Reads,
                &[
                    "-T",
                    "--upload-file",
                    "-d",
                    "--data",
                    "--data-ascii",
                    "--data-binary",
                    "--data-urlencode",
                    "--json",
                    "-F",
                    "--form",
                    "-H",
                    "--header",
                    "--proxy-header",
                    "-w",
                    "--write-out",
                    "--url-query",
                    "--variable",
                ],
            ),
        ],
    ),
    row(
        &["wget"],
        &[
            (
                Why::Writes,
                &[
                    "-O",
                    "--output-document",
                    "-o",
                    "--output-file",
                    "-a",
                    "--append-output",
                    "-P",
                    "--directory-prefix",
                    "--save-cookies",
                    "--warc-file",
                    "--rejected-log",
                    "--hsts-file",
                ],
            ),
            (
                Why::Reads,
                &["-i", "--input-file", "--post-file", "--body-file"],
            ),
            (Why::Config, &["-e", "--execute", "--config"]),
            (Why::Shell, &["--use-askpass"]),
        ],
    ),
    // Writers. tee writes every operand and cp/mv write their last one; lint warns about
    // placeholders there, the guard only refuses the options that redirect the writes.
    row(&["tee"], &[(Why::Writes, &["-a", "--append"])]),
    row(&["dd"], &[(Why::Writes, &["of="])]),
    row(&["cp", "mv", "ln", "install"], COPY),
    row(
        &["sort"],
        &[
            (
                Why::Writes,
                &["-o", "--output", "-T", "--temporary-directory"],
            ),
            (Why::Shell, &["--compress-program"]),
        ],
    ),
    row(
        &["tcpdump"],
        &[
            (Why::Shell, &["-z"]),
            (Why::Writes, &["-w"]),
            (Why::Reads, &["-F", "-V"]),
        ],
    ),
    row(
        &["dmesg"],
        &[
            (
                Why::State,
                &[
                    "-c",
                    "--read-clear",
                    "-C",
                    "--clear",
                    "-D",
                    "--console-off",
                    "-E",
                    "--console-on",
                    "-n",
                    "--console-level",
                ],
            ),
            (Why::Reads, &["-F", "--file"]),
        ],
    ),
    row(
        &["crontab"],
        &[
            (Why::Escape, &["-e"]),
            (Why::State, &["-r"]),
            (Why::Identity, &["-u"]),
        ],
    ),
    // Wrappers: the wrapped command is an operand (lint warns); these are the wrappers' own
    // options that widen what they do.
    row(
        &["env"],
        &[
            (Why::Shell, &["-S", "--split-string"]),
            (Why::Code, &["LD_PRELOAD=", "LD_LIBRARY_PATH=", "LD_AUDIT="]),
        ],
    ),
    row(
        &["sudo"],
        &[
            (Why::Escape, &["-e", "--edit"]),
            (
                Why::Shell,
                &["-s", "--shell", "-i", "--login", "-A", "--askpass"],
            ),
            (
                Why::Identity,
                &[
                    "-u", "--user", "-g", "--group", "-r", "--role", "-t", "--type",
                ],
            ),
            (Why::Config, &["-E", "--preserve-env", "-D", "--chdir"]),
            (Why::Host, &["-R", "--chroot"]),
        ],
    ),
    row(
        &["doas"],
        &[(Why::Shell, &["-s"]), (Why::Identity, &["-u"])],
    ),
    row(
        &["su", "runuser"],
        &[
            (
                Why::Shell,
                &[
                    "-c",
                    "--command",
                    "--session-command",
                    "-s",
                    "--shell",
                    "-l",
                    "--login",
                ],
            ),
            (
                Why::Identity,
                &["-g", "--group", "-G", "--supp-group", "-u", "--user"],
            ),
            (
                Why::Config,
                &[
                    "-m",
                    "-p",
                    "--preserve-environment",
                    "-w",
                    "--whitelist-environment",
                ],
            ),
        ],
    ),
    row(&["xargs"], &[(Why::Reads, &["-a", "--arg-file"])]),
    row(&["flock"], &[(Why::Shell, &["-c", "--command"])]),
    row(
        &["script"],
        &[
            (Why::Shell, &["-c", "--command"]),
            (
                Why::Writes,
                &[
                    "-O",
                    "--log-out",
                    "-I",
                    "--log-in",
                    "-B",
                    "--log-io",
                    "-T",
                    "--log-timing",
                ],
            ),
        ],
    ),
    row(
        &["strace", "ltrace"],
        &[
            (Why::Writes, &["-o", "--output"]),
            (Why::Host, &["-p", "--attach"]),
        ],
    ),
];
