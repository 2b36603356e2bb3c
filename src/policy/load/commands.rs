//! A role's `commands`: each entry a rule string, or the explicit form
//! `{ rule = "…", unsafe = "why this is acceptable" }` for a rule that hands the user a program.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::{At, PolicyError};
use crate::policy::rules::{self, CommandRule};

/// One entry of `commands`, as written.
pub(super) struct RawCommand {
    /// The rule text.
    pub(super) rule: String,
    /// The acknowledged reason, for the table form.
    pub(super) unsafe_reason: Option<String>,
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawCommand, D::Error> {
        deserializer.deserialize_any(RawCommandVisitor)
    }
}

struct RawCommandVisitor;

impl<'de> Visitor<'de> for RawCommandVisitor {
    type Value = RawCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command rule: a string, or { rule = \"…\", unsafe = \"why\" }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawCommand, E> {
        Ok(RawCommand {
            rule: text.to_owned(),
            unsafe_reason: None,
        })
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawCommand, M::Error> {
        let mut rule: Option<String> = None;
        let mut reason: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "rule" => &mut rule,
                "unsafe" => &mut reason,
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key {other:?} in a command rule table (it takes rule and unsafe)"
                    )));
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            *slot = Some(map.next_value()?);
        }
        let rule = rule.ok_or_else(|| de::Error::custom("a command rule table needs rule"))?;
        let reason = reason.ok_or_else(|| {
            de::Error::custom(
                "a command rule table needs unsafe = \"why this is acceptable\" (write a rule \
                 that needs no reason as a plain string)",
            )
        })?;
        Ok(RawCommand {
            rule,
            unsafe_reason: Some(reason),
        })
    }
}

/// Parses a role's rules. A rule that hands the user a program is an error unless the entry
/// acknowledges it with a reason (or `ignored`: the role is a full shell, which never uses its
/// rules); `pty` says whether the role's exec sessions get a terminal.
pub(super) fn build(
    at: At,
    commands: &[Spanned<RawCommand>],
    pty: bool,
    ignored: bool,
    errors: &mut Vec<PolicyError>,
) -> Vec<CommandRule> {
    let mut parsed = Vec::with_capacity(commands.len());
    for command in commands {
        let offset = command.span().start;
        let raw = command.get_ref();
        let rule = match CommandRule::parse(&raw.rule) {
            Ok(rule) => rule,
            Err(e) => {
                errors.push(at.err(offset, format!("command rule {:?}: {e}", raw.rule)));
                continue;
            }
        };
        let rule = match (&raw.unsafe_reason, rules::hands_over(&rule, pty)) {
            (Some(reason), _) if reason.trim().is_empty() => {
                errors.push(at.err(
                    offset,
                    format!(
                        "command rule {:?}: unsafe must say why the rule is acceptable",
                        raw.rule
                    ),
                ));
                continue;
            }
            (Some(reason), _) => rule.acknowledged(reason.trim()),
            (None, Some(why)) if !ignored => {
                errors.push(at.err(
                    offset,
                    format!(
                        "command rule {:?} hands the user a program: {why}; if that is \
                         intended, write it as {{ rule = {:?}, unsafe = \"why this is \
                         acceptable\" }}",
                        raw.rule, raw.rule
                    ),
                ));
                continue;
            }
            (None, _) => rule,
        };
        parsed.push(rule);
    }
    parsed
}

/// What `gatehouse check` says about one parsed rule: warnings (lint, or an `unsafe` mark on a
/// rule that needs none) and notes (what its wildcards admit and what it pins; for an
/// acknowledged rule, why it hands over a program and the reason it was accepted).
pub(super) fn remarks(rule: &CommandRule, pty: bool) -> (Vec<String>, Vec<String>) {
    let mut notes = rules::notes(rule, pty);
    let warnings = match rule.unsafe_reason() {
        Some(reason) => match rules::hands_over(rule, pty) {
            Some(why) => {
                notes.insert(0, format!("acknowledged as unsafe ({why}): {reason:?}"));
                Vec::new()
            }
            None => vec![format!(
                "marked unsafe ({reason:?}), though Gatehouse knows no way it hands the user a \
                 program; the mark only adds the reason to the audit lines of its sessions"
            )],
        },
        None => rules::lint(rule),
    };
    (warnings, notes)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::load_sources;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgdDjKMSrY8qUgnxyBR4qy1pPUWL3qHFqK7jGmAgydd a";

    fn load(commands: &str, exec_pty: bool) -> Result<crate::policy::Policy, String> {
        load_role(commands, &format!("exec_pty = {exec_pty}"))
    }

    fn load_role(commands: &str, settings: &str) -> Result<crate::policy::Policy, String> {
        let text = format!(
            "[[user]]\nname = \"alice\"\nkeys = [\"{KEY}\"]\ngroups = [\"sre\"]\n\n\
             [[target]]\nname = \"web-01\"\naddress = \"127.0.0.1\"\nhost_keys = [\"{KEY}\"]\n\n\
             [[role]]\nname = \"ops\"\nmembers = [\"sre\"]\ntargets = [\"web-01\"]\n\
             login = \"ops\"\napprovals = 0\n{settings}\ncommands = [\n{commands}\n]\n"
        );
        load_sources(&[(Path::new("p.toml"), &text)]).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_and_acknowledged_rules_load() {
        let policy = load(
            "\"ls *\",\n{ rule = \"vim /etc/motd\", unsafe = \"edited by hand\" },",
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let role = policy.role("ops").unwrap_or_else(|| panic!("no role"));
        assert_eq!(role.commands, ["ls *", "vim /etc/motd"]);
        let acknowledged: Vec<_> = role.allow.unsafe_rules().map(|r| r.source()).collect();
        assert_eq!(acknowledged, ["vim /etc/motd"]);
        assert_eq!(
            role.allow
                .unsafe_rule_for("'vim' '/etc/motd'")
                .and_then(|r| r.unsafe_reason()),
            Some("edited by hand")
        );
        assert!(role.allow.unsafe_rule_for("'ls' '-la'").is_none());
        assert!(
            policy.notes().iter().any(|n| n.starts_with(
                "p.toml:20: role \"ops\", rule \"vim /etc/motd\": acknowledged as unsafe"
            )),
            "{:?}",
            policy.notes()
        );
    }

    #[test]
    fn malformed_entries_are_errors_with_lines() {
        for (entry, needle) in [
            ("{ rule = \"ls\" }", "needs unsafe"),
            ("{ unsafe = \"x\" }", "needs rule"),
            (
                "{ rule = \"ls\", unsafe = \"x\", why = \"y\" }",
                "unknown key \"why\"",
            ),
            (
                "{ rule = \"vim x\", unsafe = \"  \" }",
                "unsafe must say why",
            ),
            ("42", "a command rule"),
            ("\"vim /etc/motd\"", "hands the user a program"),
        ] {
            let err = load(entry, false).err().unwrap_or_default();
            assert!(
                err.contains("p.toml:19:") && err.contains(needle),
                "{entry}: {err}"
            );
        }
        // A pager is a hand-over only when exec sessions get a terminal.
        assert!(load("\"less /var/log/syslog\"", false).is_ok());
        let err = load("\"less /var/log/syslog\"", true)
            .err()
            .unwrap_or_default();
        assert!(err.contains("gives exec sessions a terminal"), "{err}");
    }

    #[test]
    fn a_full_shell_ignores_its_rules() {
        assert!(load("\"vim /etc/motd\"", false).is_err());
        let policy = load_role("\"vim /etc/motd\"", "shell = \"full\"\nexec_pty = true")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            policy
                .warnings()
                .iter()
                .any(|w| w.contains("commands are ignored")),
            "{:?}",
            policy.warnings()
        );
    }

    #[test]
    fn an_unneeded_mark_is_a_warning() {
        let policy = load("{ rule = \"ls *\", unsafe = \"just in case\" },", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            policy
                .warnings()
                .iter()
                .any(|w| w.contains("knows no way it hands the user a program")),
            "{:?}",
            policy.warnings()
        );
    }
}
