//! Folders on file systems unlike the usual one, mounted for one test: a
//! FAT image through FUSE (case-insensitive, no permission bits), an ext4
//! image on a loop device (made with the test's `mkfs.ext4` flags: 128-byte
//! inodes for whole-second mtimes; casefold), a small tmpfs (a full disk).
//! The tests that need one share these, with the tools found (and
//! installed by `scripts/test-deps.sh` when missing) in one place.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the tests run as root (mounting needs it).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `tool` on the PATH or where Debian puts it.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/sbin".into(), "/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs `cmd`, or says how it failed.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A file system mounted for one test; unmounted on drop (lazily when a
/// server that is still going away keeps it busy).
pub struct Mount {
    at: PathBuf,
}

impl Mount {
    /// A 64 MiB FAT image in `scratch`, mounted through FUSE at `at`, or
    /// why not.
    pub fn fat(scratch: &Path, at: &Path) -> Result<Mount, String> {
        if !is_root() {
            return Err("mounting through FUSE here needs root".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let [mkfs, fusefat] = tools(["mkfs.fat", "fusefat"])?;
        let image = image(scratch, "fat.img")?;
        run(Command::new(mkfs).arg(&image))?;
        mount(at, Command::new(fusefat).args(["-o", "rw+"]).arg(&image))
    }

    /// A 64 MiB ext4 image in `scratch` made with `mkfs.ext4 -q -F` and
    /// `flags` (`-I 128`: whole-second mtimes), loop-mounted at `at`, or
    /// why not.
    pub fn ext4(scratch: &Path, at: &Path, flags: &[&str]) -> Result<Mount, String> {
        if !is_root() {
            return Err("a loop mount needs root".into());
        }
        let [mkfs] = tools(["mkfs.ext4"])?;
        let image = image(scratch, "ext4.img")?;
        run(Command::new(mkfs)
            .args(["-q", "-F"])
            .args(flags)
            .arg(&image))?;
        mount(at, Command::new("mount").args(["-o", "loop"]).arg(&image))
    }

    /// A 64 MiB ext4 image made with casefold, loop-mounted at `at` (a
    /// folder in it folds letter case once `chattr +F` is set on it), or
    /// why not: it needs a kernel built with `CONFIG_UNICODE`.
    pub fn casefold(scratch: &Path, at: &Path) -> Result<Mount, String> {
        if !Path::new("/sys/fs/ext4/features/casefold").exists() {
            return Err("this kernel's ext4 has no casefold (CONFIG_UNICODE)".into());
        }
        Mount::ext4(scratch, at, &["-O", "casefold"])
    }

    /// A tmpfs of `size` (as `mount -o size=` takes it) at `at`, or why not.
    pub fn tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
        let opts = format!("size={size},mode=0755");
        mount(
            at,
            Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]),
        )
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if run(Command::new("umount").arg(&self.at)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.at));
        }
    }
}

/// Makes `at` and runs `mount` (a command that takes the mount point last).
fn mount(at: &Path, mount: &mut Command) -> Result<Mount, String> {
    std::fs::create_dir_all(at).map_err(|e| format!("making {}: {e}", at.display()))?;
    run(mount.arg(at))?;
    Ok(Mount {
        at: at.to_path_buf(),
    })
}

/// An empty 64 MiB image file `name` in `scratch`.
fn image(scratch: &Path, name: &str) -> Result<PathBuf, String> {
    let image = scratch.join(name);
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(64 << 20))
        .map_err(|e| format!("making {}: {e}", image.display()))?;
    Ok(image)
}

/// The tools `names`, found, or installed by `scripts/test-deps.sh`
/// first.
fn tools<const N: usize>(names: [&str; N]) -> Result<[PathBuf; N], String> {
    let find = || {
        let found = names.map(find_tool);
        found
            .iter()
            .all(Option::is_some)
            .then(|| found.map(Option::unwrap))
    };
    if let Some(t) = find() {
        return Ok(t);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-deps.sh");
    run(Command::new("bash").arg(script))?;
    find().ok_or_else(|| {
        format!(
            "{} missing and scripts/test-deps.sh could not install it",
            names.join(" or ")
        )
    })
}
