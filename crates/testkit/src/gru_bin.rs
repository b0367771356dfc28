//! Which `gru` binary the kit runs. Cargo tells only the gru package's own tests where it
//! built `gru` ([`gru()`]); everyone else finds it through `GRU_BIN` or next to their own
//! executable in `target/<profile>/` ([`GruBin::locate`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that names the `gru` binary (as the Node end-to-end tests read it).
const GRU_BIN_ENV: &str = "GRU_BIN";

/// Why no `gru` binary was found.
#[derive(Debug, thiserror::Error)]
pub enum GruBinError {
    /// `GRU_BIN` is set but names no file.
    #[error("{GRU_BIN_ENV} is {0}, which is not a file")]
    NotAFile(PathBuf),
    /// The running executable's path is unknown.
    #[error("cannot tell where this executable is: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// Nothing at the place next to the running executable.
    #[error(
        "no gru binary at {0}: build it first (`cargo build -p gru`, with `--release` for \
         target/release), or name one with {GRU_BIN_ENV}"
    )]
    NotBuilt(PathBuf),
}

/// The path of a `gru` executable.
#[derive(Clone, Debug)]
pub struct GruBin {
    /// The executable.
    path: PathBuf,
}

impl GruBin {
    /// The binary at `path`. A wrong path shows when a process is spawned.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `GRU_BIN` if set, else the `gru` in the running executable's `target/<profile>/`
    /// directory (a test binary runs from its `deps/` subdirectory).
    pub fn locate() -> Result<Self, GruBinError> {
        if let Some(path) = std::env::var_os(GRU_BIN_ENV) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(GruBinError::NotAFile(path));
            }
            return Ok(Self { path });
        }
        let exe = std::env::current_exe().map_err(GruBinError::CurrentExe)?;
        let path = sibling_gru(&exe);
        if !path.is_file() {
            return Err(GruBinError::NotBuilt(path));
        }
        Ok(Self { path })
    }

    /// The executable's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs it, without arguments yet.
    pub fn command(&self) -> Command {
        Command::new(&self.path)
    }

    /// `gru dev` with its data under `data_dir`, HTTP on `http` (`host:port`, a name allowed),
    /// socket.io on 127.0.0.1:`sio`, gRPC and gossip on free loopback ports.
    pub fn dev(&self, data_dir: &Path, http: &str, sio: u16) -> Command {
        let mut cmd = self.command();
        cmd.arg("dev")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", http])
            .args([
                "--grpc",
                &format!("127.0.0.1:{}", crate::ports::free_port()),
            ])
            .args(["--sio", &format!("127.0.0.1:{sio}")])
            .args([
                "--gossip",
                &format!("127.0.0.1:{}", crate::ports::free_port()),
            ]);
        cmd
    }
}

/// The `gru` cargo built for the running test binary of the gru package: the one
/// `NEXTEST_BIN_EXE_gru` (nextest) or `CARGO_BIN_EXE_gru` names at run time, else the `gru` in
/// the test binary's `target/<profile>/` — the file `env!("CARGO_BIN_EXE_gru")` names when the
/// test is compiled. What every cluster of gru's integration tests runs. Panics when it is not
/// there.
pub fn gru() -> GruBin {
    let named = ["NEXTEST_BIN_EXE_gru", "CARGO_BIN_EXE_gru"]
        .iter()
        .find_map(std::env::var_os);
    let path = match named {
        Some(path) => PathBuf::from(path),
        None => sibling_gru(&std::env::current_exe().expect("the test binary's own path")),
    };
    assert!(
        path.is_file(),
        "no gru binary at {}: gru's integration tests build it (`cargo test -p gru`)",
        path.display()
    );
    GruBin { path }
}

/// Where cargo puts `gru` for the profile that built `exe`: beside it, or one level up from
/// `deps/` where test binaries live.
fn sibling_gru(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    let dir = match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    dir.join(format!("gru{}", std::env::consts::EXE_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gru_is_looked_for_in_the_profile_directory() {
        assert_eq!(
            sibling_gru(Path::new("/r/target/release/gru-bench")),
            Path::new("/r/target/release/gru")
        );
        assert_eq!(
            sibling_gru(Path::new("/r/target/debug/deps/gru_testkit-0123")),
            Path::new("/r/target/debug/gru")
        );
    }
}
