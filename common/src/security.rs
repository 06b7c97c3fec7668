//! `--security-opt`, as Docker spells it (`docker run --security-opt`):
//! `seccomp=unconfined` runs without the syscall filter, and
//! `no-new-privileges[=true|false]` sets no_new_privs. Docker also takes
//! `seccomp=PROFILE.json`, `apparmor=…` and `label=…`; this workshop has no
//! profile loader, AppArmor or SELinux, so those are refused, not ignored.

/// One `--security-opt` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined`: no seccomp filter at all.
    SeccompUnconfined,
    /// `no-new-privileges`, or `no-new-privileges=true|false`.
    NoNewPrivileges(bool),
}

/// What the error for an unknown option lists.
const ACCEPTED: &str = "use seccomp=unconfined, no-new-privileges or no-new-privileges=true|false";

/// For clap's `value_parser`. Docker's rules (moby's `parseSecurityOpt`):
/// `KEY=VALUE`, or the older `KEY:VALUE`; a bare `no-new-privileges` means
/// true; the boolean is Go's `strconv.ParseBool` (1, t, true, TRUE, …).
pub fn parse_security_opt(text: &str) -> Result<SecurityOpt, String> {
    if text == "no-new-privileges" {
        return Ok(SecurityOpt::NoNewPrivileges(true));
    }
    let pair = text.split_once('=').or_else(|| text.split_once(':'));
    match pair {
        Some(("seccomp", "unconfined")) => Ok(SecurityOpt::SeccompUnconfined),
        Some(("no-new-privileges", value)) => match parse_bool(value) {
            Some(on) => Ok(SecurityOpt::NoNewPrivileges(on)),
            None => Err(format!("invalid --security-opt {text:?}: no-new-privileges takes true or false")),
        },
        Some(("seccomp", _)) => Err(format!(
            "invalid --security-opt {text:?}: only Docker's default seccomp profile is built in; {ACCEPTED}"
        )),
        _ => Err(format!("invalid --security-opt {text:?}: {ACCEPTED}")),
    }
}

/// Go's `strconv.ParseBool`, which Docker uses for the value.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// True when `--security-opt seccomp=unconfined` was given.
pub fn seccomp_unconfined(opts: &[SecurityOpt]) -> bool {
    opts.contains(&SecurityOpt::SeccompUnconfined)
}

/// True when no_new_privs was asked for. Off by default, as in Docker; the
/// last `no-new-privileges…` given wins, as it does in Docker.
pub fn no_new_privileges(opts: &[SecurityOpt]) -> bool {
    opts.iter()
        .rev()
        .find_map(|opt| match opt {
            SecurityOpt::NoNewPrivileges(on) => Some(*on),
            SecurityOpt::SeccompUnconfined => None,
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_spellings_are_accepted() {
        use SecurityOpt::*;
        for (text, opt) in [
            ("seccomp=unconfined", SeccompUnconfined),
            ("seccomp:unconfined", SeccompUnconfined),
            ("no-new-privileges", NoNewPrivileges(true)),
            ("no-new-privileges=true", NoNewPrivileges(true)),
            ("no-new-privileges:true", NoNewPrivileges(true)),
            ("no-new-privileges=1", NoNewPrivileges(true)),
            ("no-new-privileges=false", NoNewPrivileges(false)),
            ("no-new-privileges:False", NoNewPrivileges(false)),
        ] {
            assert_eq!(parse_security_opt(text), Ok(opt), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_naming_it_and_the_accepted_ones() {
        for text in ["seccomp", "seccomp=default.json", "apparmor=unconfined", "label=disable", "nnp", ""] {
            let err = parse_security_opt(text).unwrap_err();
            assert!(err.starts_with(&format!("invalid --security-opt {text:?}: ")), "{err}");
            assert!(err.ends_with(ACCEPTED), "{err}");
        }
        let err = parse_security_opt("no-new-privileges=yes").unwrap_err();
        assert_eq!(err, "invalid --security-opt \"no-new-privileges=yes\": no-new-privileges takes true or false");
    }

    #[test]
    fn seccomp_is_on_and_no_new_privs_off_unless_asked() {
        use SecurityOpt::*;
        assert!(!seccomp_unconfined(&[]));
        assert!(!no_new_privileges(&[]));
        assert!(seccomp_unconfined(&[NoNewPrivileges(true), SeccompUnconfined]));
        assert!(no_new_privileges(&[NoNewPrivileges(true), SeccompUnconfined]));
        assert!(!no_new_privileges(&[NoNewPrivileges(true), NoNewPrivileges(false)]));
        assert!(no_new_privileges(&[NoNewPrivileges(false), NoNewPrivileges(true)]));
    }
}
