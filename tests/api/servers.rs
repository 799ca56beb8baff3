//! Throwaway Postgres and Redis servers started from the binaries on this machine, for
//! the production-stack tests when neither `TEST_*_URL` nor a Docker engine is at hand.
//!
//! One pair serves every test of the run. They live in a temporary directory and are
//! stopped, and the directory removed, by a watchdog shell once this test process has
//! exited, however it exits.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why no local servers could be started.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum LocalServersError {
    /// A program the servers need is not installed.
    #[error("{0} not found")]
    Missing(&'static str),
    /// A step of starting them failed.
    #[error("{step}: {detail}")]
    Failed {
        /// What was being done.
        step: &'static str,
        /// What went wrong (the program's output, or the error).
        detail: String,
    },
}

/// The admin URL of the Postgres server and the URL of the Redis server.
#[derive(Debug, Clone)]
pub(crate) struct LocalServers {
    pub(crate) admin_url: String,
    pub(crate) redis_url: String,
}

/// The run's local servers, started on first use.
pub(crate) fn local_servers() -> Result<LocalServers, LocalServersError> {
    static SERVERS: OnceLock<Result<LocalServers, LocalServersError>> = OnceLock::new();
    SERVERS.get_or_init(start).clone()
}

fn failed(step: &'static str, detail: impl std::fmt::Display) -> LocalServersError {
    LocalServersError::Failed {
        step,
        detail: detail.to_string(),
    }
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (the newest).
fn postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn free_port() -> Result<u16, LocalServersError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("finding a free port", e))
}

/// Runs `command` to its end; its output is the error when it fails.
fn run(step: &'static str, command: &mut Command) -> Result<(), LocalServersError> {
    let output = command.output().map_err(|e| failed(step, e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(failed(
        step,
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

/// Postgres refuses to run as root: as root, its commands run as `postgres`.
fn as_postgres(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start() -> Result<LocalServers, LocalServersError> {
    let pg = postgres_bin().ok_or(LocalServersError::Missing(
        "the PostgreSQL server (initdb and pg_ctl)",
    ))?;
    let redis = on_path("redis-server").ok_or(LocalServersError::Missing("redis-server"))?;
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| failed("reading the user id", e))?;
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";

    let dir = std::env::temp_dir().join(format!(
        "conveyor-test-{}-{}",
        std::process::id(),
        ulid::Ulid::generate().to_string().to_lowercase()
    ));
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).map_err(|e| failed("making the data directory", e))?;
    if root {
        // The data directory is the postgres user's; the path to it must be open.
        run(
            "handing the data directory to postgres",
            Command::new("chown").arg("postgres:").arg(&data),
        )?;
        run(
            "opening the test directory",
            Command::new("chmod").arg("755").arg(&dir),
        )?;
    }
    run(
        "initdb",
        as_postgres(&pg.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
    )?;
    let pg_port = free_port()?;
    let options = format!(
        "-p {pg_port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        data.display()
    );
    run(
        "starting postgres",
        as_postgres(&pg.join("pg_ctl"), root)
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(data.join("server.log"))
            .args(["-w", "start"]),
    )?;
    let redis_port = free_port()?;
    run(
        "starting redis-server",
        Command::new(&redis)
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "yes", "--save", "", "--appendonly", "no"])
            .arg("--pidfile")
            .arg(dir.join("redis.pid"))
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .arg("--dir")
            .arg(&dir),
    )?;
    watch(&pg, &data, &dir, root)?;
    wait_for_redis(redis_port)?;
    Ok(LocalServers {
        admin_url: format!("postgres://postgres@127.0.0.1:{pg_port}/postgres"),
        redis_url: format!("redis://127.0.0.1:{redis_port}"),
    })
}

/// A shell that outlives this process by a second: it stops both servers and removes
/// their directory once this process is gone.
fn watch(pg: &Path, data: &Path, dir: &Path, root: bool) -> Result<(), LocalServersError> {
    let as_pg = if root { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {as_pg}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
         kill \"$(cat '{dir}/redis.pid')\" 2>/dev/null; sleep 1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = pg.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| failed("starting the watchdog", e))
}

fn wait_for_redis(port: u16) -> Result<(), LocalServersError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(failed("waiting for redis-server", "no answer within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
