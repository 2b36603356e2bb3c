//! Which `env` requests are passed on: only `LANG` and `LC_*` with a plain locale name.
//!
//! Everything else (`LD_PRELOAD`, `BASH_ENV`, `PATH`, …) could change what a command does on
//! the target, so it is dropped.

/// Whether the variable may be set on the target.
pub fn allowed(name: &str, value: &str) -> bool {
    let name_ok = name == "LANG"
        || name
            .strip_prefix("LC_")
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_uppercase()));
    name_ok && is_locale(value)
}

/// `C`, `POSIX`, `C.UTF-8`, `en_US.UTF-8`, `de_DE@euro`, `sr_RS.UTF-8@latin`.
fn is_locale(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_locales_pass() {
        assert!(allowed("LANG", "C.UTF-8"));
        assert!(allowed("LANG", "en_US.UTF-8"));
        assert!(allowed("LC_ALL", "de_DE@euro"));
        assert!(allowed("LC_CTYPE", "C"));
        assert!(!allowed("LC_", "C"));
        assert!(!allowed("LD_PRELOAD", "/tmp/x.so"));
        assert!(!allowed("LANG", "$(reboot)"));
        assert!(!allowed("LANG", "C; rm -rf /"));
        assert!(!allowed("LANG", "../../etc/passwd"));
        assert!(!allowed("LANG", ""));
        assert!(!allowed("lang", "C"));
    }
}
