//! Paths taken from data or definitions (a manifest's file list, a value set's
//! CSV) must name a file inside the folder they are relative to: never an
//! absolute path, never `..`, never a symlink that leads out of the folder.
//! A path that escapes could make one practice's delivery load another
//! practice's patients, or a definition read any file on the machine.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Escape {
    #[error("is absolute")]
    Absolute,
    #[error("is empty")]
    Empty,
    #[error("goes up with `..`")]
    Parent,
    #[error("resolves (through a symlink) to {0}, outside {1}")]
    Symlink(PathBuf, PathBuf),
}

/// `root.join(relative)` when `relative` stays inside `root`. A path that does
/// not exist yet is judged on its components alone; one that exists is also
/// resolved through symlinks.
pub fn inside(root: &Path, relative: &str) -> Result<PathBuf, Escape> {
    if relative.trim().is_empty() {
        return Err(Escape::Empty);
    }
    let rel = Path::new(relative);
    for component in rel.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(Escape::Parent),
            Component::RootDir | Component::Prefix(_) => return Err(Escape::Absolute),
        }
    }
    let path = root.join(rel);
    if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize())
        && !real.starts_with(&real_root)
    {
        return Err(Escape::Symlink(real, real_root));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("delivery");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.parquet"), b"x").unwrap();
        std::fs::write(dir.path().join("outside.parquet"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.parquet"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/a.parquet"), root.join("inner")).unwrap();
        // (path, expected)
        let cases: &[(&str, Result<(), Escape>)] = &[
            ("sub/a.parquet", Ok(())),
            ("./sub/a.parquet", Ok(())),
            ("not-yet-there.parquet", Ok(())),
            ("inner", Ok(())),
            ("", Err(Escape::Empty)),
            ("/etc/passwd", Err(Escape::Absolute)),
            ("../outside.parquet", Err(Escape::Parent)),
            ("sub/../../outside.parquet", Err(Escape::Parent)),
            ("sub/../a.parquet", Err(Escape::Parent)),
        ];
        for (path, expected) in cases {
            assert_eq!(inside(&root, path).map(|_| ()), *expected, "{path:?}");
        }
        assert!(matches!(inside(&root, "link"), Err(Escape::Symlink(..))));
    }
}
