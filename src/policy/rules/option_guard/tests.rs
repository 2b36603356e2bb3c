//! Tests of the option guard and its built-in table.

use super::*;

fn argv(command: &str) -> Vec<String> {
    command.split(' ').map(str::to_owned).collect()
}

/// The guard's verdict on the last word of `command`.
fn last(guard: &OptionGuard, command: &str) -> Option<String> {
    let argv = argv(command);
    guard.check(&argv, argv.len() - 1)
}

fn refused(command: &str) -> bool {
    last(&OptionGuard::builtin(), command).is_some()
}

#[test]
fn builtin_table_is_well_formed() {
    let guard = OptionGuard::builtin();
    for row in builtin_rows() {
        for (_, spellings) in row.denied {
            for spelling in *spellings {
                assert!(Form::parse(spelling).is_ok(), "{spelling}");
            }
        }
    }
    for program in [
        "less",
        "more",
        "man",
        "vi",
        "vim",
        "nano",
        "find",
        "tar",
        "zip",
        "git",
        "journalctl",
        "systemctl",
        "kubectl",
        "docker",
        "awk",
        "sed",
        "rsync",
        "ssh",
        "scp",
        "curl",
        "wget",
        "tee",
        "dd",
        "cp",
        "mv",
        "crontab",
        "python",
        "python3",
        "perl",
        "ruby",
        "env",
        "sudo",
    ] {
        assert!(guard.guards(program), "{program}");
    }
    assert!(!guard.guards("ls"));
}

#[test]
fn plain_options_and_values() {
    assert_eq!(
        last(&OptionGuard::builtin(), "curl --output"),
        Some("option \"--output\" of curl is not allowed (writes files)".to_owned())
    );
    assert!(refused("curl -o"));
    assert!(refused("curl --output=/etc/passwd"));
    assert!(!refused("curl --silent"));
    assert!(!refused("curl https://example.com/"));
    assert!(!refused("curl -s"));
}

#[test]
fn attached_short_values() {
    assert!(refused("docker -Hunix:///run/evil.sock"));
    assert!(refused("ssh -oProxyCommand=sh"));
    assert!(refused("ssh -o=ProxyCommand=sh"));
    let reason = last(&OptionGuard::builtin(), "docker -Htcp://x").unwrap_or_default();
    assert!(
        reason.starts_with("option \"-H\" of docker is not allowed"),
        "{reason}"
    );
    assert!(reason.contains("word 2 is \"-Htcp://x\""), "{reason}");
}

#[test]
fn bundled_short_flags() {
    assert!(refused("tar -xvIf"));
    assert!(refused("perl -le"));
    assert!(refused("python3 -ic"));
    assert!(!refused("tar -xvf"));
    assert!(!refused("tar -tzvf"));
    // Err on the side of refusing: an attached value containing a denied letter.
    assert!(refused("ssh -lroot"));
}

#[test]
fn old_style_tar_bundles() {
    assert!(refused("tar xIf"));
    assert!(!refused("tar xvf"));
    // Only the first argument is a bundle.
    assert!(!refused("tar xvf archive-I.tar"));
}

#[test]
fn long_option_abbreviations() {
    assert!(refused("curl --outp"));
    assert!(refused("curl --out=x"));
    assert!(refused("curl --o"));
    assert!(refused("tar --to-c=sh"));
    assert!(refused("tar --use=sh"));
    assert!(!refused("tar --to-stdout"));
    assert!(!refused("curl --compressed"));
    assert!(refused("curl --co"));
    assert!(!refused("curl --"));
}

#[test]
fn single_dash_long_options() {
    assert!(refused("find . -exec"));
    assert!(refused("find . -execdir"));
    assert!(refused("find . -delete"));
    assert!(refused("find . -fprint"));
    assert!(refused("find . -fprintf"));
    assert!(refused("find . -ok"));
    assert!(!refused("find . -o"));
    assert!(!refused("find . -executable"));
    assert!(!refused("find . -name"));
    assert!(!refused("find . -print"));
    assert!(refused("gdb -ex"));
    assert!(refused("gdb -eval"));
}

#[test]
fn double_dash_ends_options() {
    assert!(!refused("curl -- -o"));
    assert!(!refused("less -- +!sh"));
    assert!(refused("less -N +!sh"));
    // `--` as the value of the option before it does not count.
    assert!(refused("tar -C -- --to-command=sh"));
    assert!(!refused("tar -C dir -- --to-command=sh"));
    // find's expression follows its paths whatever comes before.
    assert!(refused("find -- . -exec"));
    // dd's operands are operands after `--` too.
    assert!(refused("dd -- of=/etc/passwd"));
    // Programs not trusted to stop at `--` are checked throughout.
    assert!(refused("zip -- -TT"));
    assert!(refused("more -- +x"));
}

#[test]
fn options_that_read_a_file_given_as_at_file_or_a_name_list() {
    for cmd in [
        "curl -d",
        "curl --data-binary=@/etc/shadow",
        "curl -Ff=@/etc/shadow",
        "curl -H",
        "curl -w@/etc/shadow",
        "tar -tzf x.tgz -T",
        "tar -tzf x.tgz --files-from=/etc/shadow",
    ] {
        assert!(refused(cmd), "{cmd}");
    }
    assert!(!refused("curl -sS https://example.invalid/health"));
}

#[test]
fn plus_commands_for_pagers_and_editors() {
    assert!(refused("less +!sh"));
    assert!(refused("more +/x"));
    assert!(refused("vim +:!sh"));
    assert!(refused("vi +1"));
    assert!(!refused("nano +10"));
    assert!(!refused("cat +x"));
    assert!(refused("less -N+!sh"), "inside a bundle of short flags");
    assert!(!refused("less -N"));
    let reason = last(&OptionGuard::builtin(), "less +!sh").unwrap_or_default();
    assert_eq!(
        reason,
        "a \"+command\" argument of less is not allowed (pager or editor escape); word 2 is \
         \"+!sh\""
    );
}

#[test]
fn operand_prefixes() {
    assert!(refused("dd of=/dev/sda"));
    assert!(!refused("dd if=/dev/zero"));
    assert!(refused("env LD_PRELOAD=/tmp/x.so"));
    let reason = last(&OptionGuard::builtin(), "dd of=/x").unwrap_or_default();
    assert!(reason.starts_with("operand \"of=…\" of dd"), "{reason}");
}

#[test]
fn program_names_are_basenames_and_stems() {
    assert!(refused("/usr/bin/find . -exec"));
    assert!(refused("./find . -exec"));
    assert!(refused("python3.12 -c"));
    assert!(refused("/usr/bin/python3 -m"));
    assert!(refused("vim.basic -c"));
    assert!(refused("perl5.36.0 -e"));
    assert!(!refused("findx -exec"));
    assert_eq!(
        candidates("/usr/bin/python3.12").collect::<Vec<_>>(),
        ["python3.12", "python3", "python", "python"]
    );
}

#[test]
fn wrappers_apply_the_wrapped_programs_table() {
    assert!(refused("sudo less +!sh"));
    assert!(refused("sudo -- less +!sh"));
    assert!(refused("timeout 5 vim -c"));
    assert!(refused("env -i find . -exec"));
    assert!(refused("sudo -u root env LD_PRELOAD=x"));
    // The wrapped program's own `--` counts only after it.
    assert!(!refused("sudo less -- +!sh"));
    // Not a wrapper: later words are not programs.
    assert!(!refused("grep less +x"));
}

#[test]
fn index_zero_and_out_of_range_are_not_refused() {
    let guard = OptionGuard::builtin();
    let a = argv("curl -o x");
    assert_eq!(guard.check(&a, 0), None);
    assert_eq!(guard.check(&a, 3), None);
    assert!(guard.check(&a, 1).is_some());
}

#[test]
fn covers_the_required_programs() {
    for command in [
        "less -o",
        "less --log-file=x",
        "less -O",
        "less --LOG-FILE",
        "less -k",
        "man -P",
        "man --pager=sh",
        "man -H",
        "man -C",
        "vim -c",
        "vim --cmd",
        "vim -S",
        "vim -u",
        "nano -s",
        "nano --speller=sh",
        "find . -okdir",
        "find . -fls",
        "find . -fprint0",
        "tar --checkpoint-action=exec=sh",
        "tar --use-compress-program=sh",
        "tar -F",
        "tar --info-script=x",
        "tar --rsh-command=x",
        "zip -TT",
        "zip --unzip-command=sh",
        "git -c",
        "git --exec-path=/tmp",
        "git --upload-pack=sh",
        "git --config-env=x=y",
        "git -p",
        "git --paginate",
        "journalctl --file=x",
        "journalctl -D",
        "journalctl --root=/",
        "systemctl -H",
        "systemctl --host=x",
        "kubectl --kubeconfig=x",
        "kubectl -s",
        "kubectl --server=x",
        "kubectl --token=x",
        "kubectl --as=admin",
        "kubectl --as-group=x",
        "docker -H",
        "docker --config",
        "docker -v",
        "docker --volume=/:/host",
        "docker --privileged",
        "docker --pid=host",
        "docker --network=host",
        "docker --entrypoint=sh",
        "docker --mount",
        "docker --cap-add=ALL",
        "docker --device=/dev/sda",
        "docker --security-opt",
        "awk -f",
        "awk --file=x",
        "sed -i",
        "sed --in-place",
        "sed -f",
        "rsync -e",
        "rsync --rsh=sh",
        "rsync --rsync-path=sh",
        "rsync --remote-option=x",
        "rsync -M",
        "ssh -o",
        "ssh -F",
        "ssh -J",
        "ssh -L",
        "ssh -R",
        "ssh -D",
        "ssh -W",
        "ssh -w",
        "ssh -E",
        "ssh -i",
        "ssh -S",
        "scp -o",
        "scp -F",
        "scp -S",
        "scp -J",
        "curl -O",
        "curl --remote-name",
        "curl -K",
        "curl --config",
        "curl -T",
        "curl --upload-file",
        "curl --output-dir",
        "curl -D",
        "curl --dump-header",
        "curl --trace",
        "curl --trace-ascii",
        "curl -c",
        "curl --cookie-jar",
        "curl --libcurl",
        "wget -O",
        "wget --output-document",
        "wget -o",
        "wget --output-file",
        "wget -a",
        "wget --append-output",
        "wget -P",
        "wget --directory-prefix",
        "wget -i",
        "wget --input-file",
        "wget --post-file",
        "wget -e",
        "wget --execute",
        "wget --use-askpass",
        "tee -a",
        "tee --append",
        "cp -t",
        "cp --target-directory=/etc",
        "mv -t",
        "crontab -e",
        "crontab -r",
        "crontab -u",
        "python -c",
        "python3 -m",
        "python -i",
        "perl -e",
        "perl -E",
        "perl -M",
        "perl -m",
        "perl -i",
        "perl -x",
        "perl -d",
        "ruby -e",
        "ruby -r",
        "ruby -I",
        "ruby -i",
        "ruby -x",
        "ruby -S",
        "env -S",
        "env --split-string",
        "sudo -e",
        "sudo --edit",
        "sudo -s",
        "sudo --shell",
        "sudo -i",
        "sudo --login",
        "sudo -u",
        "sudo --user",
        "sudo -E",
    ] {
        assert!(refused(command), "{command}");
    }
    for command in [
        "journalctl --no-pager",
        "journalctl -o",
        "journalctl --since=today",
        "systemctl --no-pager",
        "kubectl -n",
        "docker --rm",
        "ls -la",
        "grep -r",
    ] {
        assert!(!refused(command), "{command}");
    }
}

#[test]
fn extra_entries_from_policy() {
    let mut extra = BTreeMap::new();
    extra.insert(
        "myctl".to_owned(),
        vec!["-o".to_owned(), "--output".to_owned(), "+".to_owned()],
    );
    extra.insert("curl".to_owned(), vec!["--proxy".to_owned()]);
    let guard = OptionGuard::builtin()
        .with_extra(&extra)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        last(&guard, "myctl --output=x"),
        Some(
            "option \"--output\" of myctl is not allowed (denied by policy); word 2 is \
             \"--output=x\""
                .to_owned()
        )
    );
    assert!(last(&guard, "myctl -vo").is_some());
    assert!(last(&guard, "/opt/bin/myctl --outp").is_some());
    assert!(last(&guard, "myctl +x").is_some());
    assert!(last(&guard, "myctl -- -o").is_none());
    assert!(last(&guard, "curl --proxy").is_some());
    // Built-in entries stay.
    assert!(last(&guard, "curl -o").is_some());
}

#[test]
fn extra_entries_are_validated() {
    for (program, option) in [
        ("myctl", "output"),
        ("myctl", "-"),
        ("myctl", "--"),
        ("myctl", "---x"),
        ("myctl", "--a b"),
        ("myctl", "-o x"),
        ("myctl", "--"),
        ("myctl", "=x"),
        ("myctl", "-\u{7}"),
        ("myctl", ""),
    ] {
        let mut extra = BTreeMap::new();
        extra.insert(program.to_owned(), vec![option.to_owned()]);
        assert!(
            matches!(
                OptionGuard::builtin().with_extra(&extra),
                Err(RuleError::BadOption { .. })
            ),
            "{option:?}"
        );
    }
    for program in ["", "/usr/bin/myctl", "..", "-x", "my ctl", "my\u{202E}ctl"] {
        let mut extra = BTreeMap::new();
        extra.insert(program.to_owned(), vec!["-o".to_owned()]);
        assert!(
            matches!(
                OptionGuard::builtin().with_extra(&extra),
                Err(RuleError::BadProgram { .. })
            ),
            "{program:?}"
        );
    }
    let mut extra = BTreeMap::new();
    extra.insert(
        "myctl".to_owned(),
        vec!["-#".to_owned(), "-exec".to_owned(), "of=".to_owned()],
    );
    assert!(OptionGuard::builtin().with_extra(&extra).is_ok());
}
