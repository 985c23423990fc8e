//! The state directory itself: used only if it is the user's own and nobody else can write to it.

use std::fs;
use std::io;
use std::path::Path;

/// Makes `dir` ready to keep state in, or says why it cannot be used. A missing directory is
/// created (mode 0700, its parents as usual) and then looked at with `lstat` on the same path, so
/// there is no window between the check and the use in which another user could put a directory
/// of theirs there: whoever created it, it is used only if it is a real directory (not a symbolic
/// link), owned by this user, that no one else can write to. In a directory others can write to,
/// another user could plant a breaker (keeping sccache off, or on) or a link where a state file
/// goes. One `lstat` when the directory is there already.
pub fn trusted_dir(dir: &Path) -> Result<(), String> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private(dir).map_err(|e| {
                format!(
                    "{} cannot be created: {e}; the shim runs without a breaker or counters",
                    dir.display()
                )
            })?;
            fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link: not used, so the shim runs without a breaker or counters; \
             point MAYBE_SCCACHE_STATE_DIR at the directory itself",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory: the shim runs without a breaker or counters",
            dir.display()
        ));
    }
    match others_can_write(&meta) {
        Some(why) => Err(format!(
            "{} {why}: not used, so the shim runs without a breaker or counters",
            dir.display()
        )),
        None => Ok(()),
    }
}

/// Creates `dir` with mode 0700; its missing parents are created as `mkdir -p` would. A directory
/// that appeared meanwhile (another call's, or anyone's) is not an error: the caller checks it.
fn create_private(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Why a directory is not this user's alone to write, if it is not: owned by another user, or
/// writable by others (any user, or a group other than this user's own: with a private group per
/// user and umask 002, a directory made by hand is group-writable by that user alone).
pub fn others_can_write(meta: &fs::Metadata) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Some(format!(
                "belongs to user id {}, not to this user ({me})",
                meta.uid()
            ));
        }
        // SAFETY: getegid cannot fail.
        let my_group = unsafe { libc::getegid() };
        let group_writable = meta.mode() & 0o020 != 0 && meta.gid() != my_group;
        if meta.mode() & 0o002 != 0 || group_writable {
            return Some(format!(
                "can be written by other users (mode {:o}; `chmod go-w` it)",
                meta.mode() & 0o7777
            ));
        }
    }
    let _ = meta;
    None
}

/// The state directory, created (and checked, see [`trusted_dir`]) if it went missing since the
/// call began. `None` when there is none to use.
pub fn ensure_dir(dir: &Path) -> Option<&Path> {
    match trusted_dir(dir) {
        Ok(()) => Some(dir),
        Err(why) => {
            log::warn!("state dir: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_a_private_state_dir_of_ones_own_is_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(trusted_dir(dir.path()), Ok(()));
        // Created private, then checked.
        let new = dir.path().join("not-yet").join("state");
        assert_eq!(trusted_dir(&new), Ok(()));
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A link, even to a directory of one's own, and a file are not used.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&new, &link).unwrap();
        assert!(trusted_dir(&link).unwrap_err().contains("symbolic link"));
        fs::write(dir.path().join("file"), "").unwrap();
        assert!(trusted_dir(&dir.path().join("file")).is_err());
        for mode in [0o777, 0o722, 0o757, 0o702, 0o1777] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("written by other users"), "{mode:o}: {e}");
        }
        // Writable by the user's own group (a private group per user, umask 002).
        for mode in [0o755, 0o775, 0o720] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(trusted_dir(dir.path()), Ok(()), "{mode:o}");
        }
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            // Writable by another group.
            std::os::unix::fs::chown(dir.path(), None, Some(65534)).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("written by other users"), "{e}");
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("belongs to user id 65534"), "{e}");
        }
    }
}
