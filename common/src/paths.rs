//! The state directories a user names (`--image-dir`, `--container-dir`),
//! resolved once as a run starts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Creates `dir` when missing and returns its canonical path: absolute, no
/// symlink, no `.` or `..`. Every later step uses this path, so the cleanup
/// unmounts and removes exactly what the start made, whatever route the
/// user's path took. Characters that an overlay option string cannot carry
/// (`,` separates options, `:` layers, `\` escapes) are refused, as are
/// control characters.
pub fn resolve(dir: &Path, flag: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {flag} {}", dir.display()))?;
    let resolved = fs::canonicalize(dir).with_context(|| format!("cannot resolve {flag} {}", dir.display()))?;
    if !resolved.is_dir() {
        bail!("{flag} {} is not a directory: name a directory", dir.display());
    }
    let text = resolved.to_string_lossy();
    if let Some(bad) = text.chars().find(|c| matches!(c, ',' | ':' | '\\') || c.is_control()) {
        bail!(
            "{flag} {:?} contains {bad:?}, which an overlay mount's options cannot carry: use a directory without ',', ':', '\\' or control characters",
            resolved
        );
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_symlinked_and_dotdot_paths_resolve_to_one_place() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, base.path().join("link")).unwrap();
        let canonical = fs::canonicalize(&real).unwrap();
        assert_eq!(resolve(&base.path().join("link"), "--x").unwrap(), canonical);
        assert_eq!(resolve(&base.path().join("real/../real/."), "--x").unwrap(), canonical);
    }

    #[test]
    fn overlay_separators_are_refused() {
        let base = tempfile::tempdir().unwrap();
        for name in ["a,b", "a:b", "a\\b", "a\nb"] {
            let err = resolve(&base.path().join(name), "--container-dir").unwrap_err().to_string();
            assert!(err.contains("--container-dir") && err.contains("cannot carry"), "{err}");
        }
    }
}
