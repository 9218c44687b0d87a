//! `twinbay agent install`: copies this binary to a place the user can
//! write (so an update can replace it), writes a systemd user unit that runs
//! the agent from there, and enables it.
//!
//! The unit's text is `packaging/systemd/twinbay-agent.user.service`, with its
//! `ExecStart=` and `ReadWritePaths=` lines filled in ([`render_unit`]). The
//! join token never goes into the unit (a file anyone may read): install
//! seeds the agent's state dir with it (`agent.json`, mode 0600), and the
//! agent forgets it once it has enrolled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use twinbay_agent::identity::Identity;

/// The user unit as packaged; [`render_unit`] fills in the paths.
pub const USER_UNIT: &str = include_str!("../../../packaging/systemd/twinbay-agent.user.service");
/// The unit's file name.
pub const UNIT_NAME: &str = "twinbay-agent.service";

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The join string from `twinbay ctl join-token create`. It is kept in the
    /// state dir (mode 0600) until the agent enrolls, never in the unit.
    #[arg(long, env = "TWINBAY_JOIN", conflicts_with = "join_file")]
    pub join: Option<String>,
    /// A file holding the join string.
    #[arg(long, value_name = "FILE")]
    pub join_file: Option<PathBuf>,
    /// Where the agent keeps its key and enrollment
    /// [default: $XDG_STATE_HOME/twinbay-agent or ~/.local/state/twinbay-agent].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where to copy the binary
    /// [default: $XDG_DATA_HOME/twinbay/bin or ~/.local/share/twinbay/bin].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Where to write the unit
    /// [default: $XDG_CONFIG_HOME/systemd/user or ~/.config/systemd/user].
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Write the binary and the unit, but do not enable or start the service.
    #[arg(long)]
    pub no_enable: bool,
    /// A file, directory or glob for the agent to watch (repeat for several).
    #[arg(long = "watch", value_name = "PATH", value_parser = crate::args::parse_watch)]
    pub watch: Vec<String>,
    /// More `twinbay agent` arguments for the service, after `--`
    /// (e.g. `-- --label env=prod --interval 10s`).
    #[arg(last = true, value_name = "AGENT_ARGS")]
    pub agent_args: Vec<String>,
}

/// Where everything goes, all absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub unit_dir: PathBuf,
}

impl Layout {
    pub fn binary(&self) -> PathBuf {
        self.bin_dir.join("twinbay")
    }

    /// The lean agent that `twinbay agent` hands over to ([`crate::handover`]).
    pub fn lean_binary(&self) -> PathBuf {
        self.bin_dir.join(crate::handover::LEAN_AGENT)
    }

    pub fn unit(&self) -> PathBuf {
        self.unit_dir.join(UNIT_NAME)
    }
}

pub fn run(args: InstallArgs) -> Result<()> {
    let layout = Layout {
        state_dir: absolute(
            args.state_dir
                .map_or_else(twinbay_agent::cli::default_state_dir, Ok)?,
        )?,
        bin_dir: absolute(args.bin_dir.map_or_else(
            || xdg_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("twinbay/bin")),
            Ok,
        )?)?,
        unit_dir: absolute(args.unit_dir.map_or_else(
            || xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("systemd/user")),
            Ok,
        )?)?,
    };
    let agent_args = agent_command(&layout, &args.watch, &args.agent_args)?;
    let unit = render_unit(&layout, &agent_args)?;
    let join = twinbay_agent::cli::join_string(args.join, args.join_file.as_deref())?;

    enroll(&layout.state_dir, join.as_deref())?;
    let exe = std::env::current_exe().context("cannot find the running binary")?;
    let size = copy_binary(&exe, &layout.binary())?;
    println!(
        "copied {} ({size} bytes) to {}",
        exe.display(),
        layout.binary().display()
    );
    // The lean agent travels with it; a stale one from an earlier install
    // must not outlive a binary that came without one.
    let lean = exe.with_file_name(crate::handover::LEAN_AGENT);
    if lean.is_file() {
        let size = copy_binary(&lean, &layout.lean_binary())?;
        println!(
            "copied {} ({size} bytes) to {}",
            lean.display(),
            layout.lean_binary().display()
        );
    } else {
        match fs::remove_file(layout.lean_binary()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| {
                    format!("cannot remove the old {}", layout.lean_binary().display())
                });
            }
            _ => {}
        }
    }
    write_atomic(&layout.unit(), &mut unit.as_bytes(), 0o644)
        .with_context(|| format!("cannot write the unit to {}", layout.unit_dir.display()))?;
    println!("wrote {}", layout.unit().display());

    let commands = [
        vec!["systemctl", "--user", "daemon-reload"],
        vec!["systemctl", "--user", "enable", UNIT_NAME],
        // restart, not start: a second install runs the new binary and unit.
        vec!["systemctl", "--user", "restart", UNIT_NAME],
    ];
    let show = |lead: &str| {
        println!("{lead}");
        for c in &commands {
            println!("  {}", c.join(" "));
        }
    };
    if args.no_enable {
        show("not enabled (--no-enable); to start the agent now and at every login, run:");
        return Ok(());
    }
    if let Err(why) = systemctl(&commands[0]) {
        println!("the systemd user manager is not reachable here ({why})");
        show("the agent is installed but not started; in your login session, run:");
        return Ok(());
    }
    for c in &commands[1..] {
        systemctl(c).map_err(|why| anyhow!("`{}` failed: {why}", c.join(" ")))?;
    }
    println!("{UNIT_NAME} enabled and started; its log: journalctl --user -u {UNIT_NAME}");
    linger_hint();
    Ok(())
}

/// `$VAR`, else `~/fallback`.
fn xdg_dir(var: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("no HOME; pass --bin-dir and --unit-dir"))?;
    Ok(Path::new(&home).join(fallback))
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("bad path {}", path.display()))
}

/// The unit's command line after the binary: `agent --state-dir DIR …`,
/// checked by parsing it as `twinbay agent` would.
pub fn agent_command(layout: &Layout, watch: &[String], extra: &[String]) -> Result<Vec<String>> {
    if let Some(a) = extra.iter().find(|a| a.starts_with("--join")) {
        bail!("{a} goes before `--`: the unit must not hold the join token");
    }
    let mut argv = vec![
        "agent".to_string(),
        "--state-dir".to_string(),
        utf8(&layout.state_dir)?,
    ];
    for w in watch {
        argv.extend(["--watch".to_string(), w.clone()]);
    }
    argv.extend(extra.iter().cloned());
    let parsed = <crate::args::Cli as clap::Parser>::try_parse_from(
        std::iter::once("twinbay".to_string()).chain(argv.iter().cloned()),
    );
    match parsed {
        Ok(crate::args::Cli {
            command: crate::args::Command::Agent(crate::args::AgentArgs { command: None, .. }),
        }) => Ok(argv),
        Ok(_) => bail!("the arguments after `--` are not for `twinbay agent`"),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid");
            bail!(
                "the agent's arguments: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            )
        }
    }
}

fn utf8(path: &Path) -> Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        anyhow!(
            "{} is not UTF-8, which a unit file cannot hold",
            path.display()
        )
    })
}

/// The user unit for `layout`: the packaged text with `ExecStart=` running
/// the copied binary with `agent_args`, and `ReadWritePaths=` the state and
/// binary dirs.
pub fn render_unit(layout: &Layout, agent_args: &[String]) -> Result<String> {
    let mut exec = vec![unit_word(&utf8(&layout.binary())?, true)?];
    for a in agent_args {
        exec.push(unit_word(a, true)?);
    }
    let rw = [
        unit_word(&utf8(&layout.state_dir)?, false)?,
        unit_word(&utf8(&layout.bin_dir)?, false)?,
    ];
    let mut out = String::with_capacity(USER_UNIT.len() + 256);
    for line in USER_UNIT.lines() {
        if line.starts_with("ExecStart=") {
            out.push_str(&format!("ExecStart={}", exec.join(" ")));
        } else if line.starts_with("ReadWritePaths=") {
            out.push_str(&format!("ReadWritePaths={}", rw.join(" ")));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// One word of a unit setting: `%` (specifiers) and, in a command line, `$`
/// (variables) doubled; quoted if it has spaces. Quotes, backslashes and
/// control characters are refused rather than escaped.
fn unit_word(word: &str, command: bool) -> Result<String> {
    if word.is_empty() {
        bail!("an empty argument cannot go in the unit");
    }
    if let Some(c) = word
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        bail!("{word:?} has a character ({c:?}) that the unit file would change; use another path");
    }
    let mut escaped = word.replace('%', "%%");
    if command {
        escaped = escaped.replace('$', "$$");
    }
    if escaped.contains(char::is_whitespace) {
        escaped = format!("\"{escaped}\"");
    }
    Ok(escaped)
}

/// Seeds the state dir with `join` (the agent enrolls with it on its first
/// start), or checks that it holds an enrollment already.
fn enroll(state_dir: &Path, join: Option<&str>) -> Result<()> {
    if join.is_some() && Identity::is_enrolled_in(state_dir) {
        println!(
            "{} is enrolled already; keeping that enrollment, not --join (remove the dir to enroll anew)",
            state_dir.display()
        );
        return Ok(());
    }
    let identity =
        Identity::load_or_enroll(state_dir, join).map_err(|e| anyhow!(twinbay_hub::report(&e)))?;
    if !identity.is_enrolled() {
        println!(
            "the agent will enroll with {} on its first start",
            identity.enrollment.hubs.join(", ")
        );
    }
    Ok(())
}

/// Copies `from` to `to` (mode 0755) through a temporary file beside it,
/// flushed to disk before the rename: a crash leaves the old binary or the
/// new one, never half of one. Returns the size.
fn copy_binary(from: &Path, to: &Path) -> Result<u64> {
    let mut src =
        fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let dir = to.parent().unwrap_or(Path::new("/"));
    write_atomic(to, &mut src, 0o755)
        .with_context(|| format!("cannot write the binary to {}", dir.display()))
}

/// Writes `content` to `path` via `.NAME.tmp` beside it, fsync, rename and
/// an fsync of the directory; creates the directory if needed.
fn write_atomic(path: &Path, content: &mut dyn std::io::Read, mode: u32) -> Result<u64> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut write = || -> std::io::Result<u64> {
        fs::create_dir_all(dir)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        let size = std::io::copy(content, &mut file)?;
        // The umask may have taken bits off.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(size)
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .map_err(Into::into)
}

/// Runs one `systemctl` command; the error is its first stderr line.
fn systemctl(args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .map_or_else(|| out.status.to_string(), |l| l.trim().to_string()))
}

/// A user service stops at logout unless the user lingers.
fn linger_hint() {
    let Ok(user) = std::env::var("USER") else {
        return;
    };
    if !Path::new("/var/lib/systemd/linger").join(&user).exists() {
        println!(
            "to keep the agent running while you are logged out: loginctl enable-linger {user}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(root: &str) -> Layout {
        Layout {
            state_dir: PathBuf::from(format!("{root}/state")),
            bin_dir: PathBuf::from(format!("{root}/bin")),
            unit_dir: PathBuf::from(format!("{root}/units")),
        }
    }

    #[test]
    fn the_unit_is_the_packaged_file_with_the_paths_filled_in() {
        let l = layout("/home/ann");
        let args = agent_command(&l, &["/etc/nginx".into()], &[]).unwrap();
        let unit = render_unit(&l, &args).unwrap();
        let changed: Vec<(&str, &str)> = USER_UNIT
            .lines()
            .zip(unit.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(USER_UNIT.lines().count(), unit.lines().count());
        assert_eq!(
            changed.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
            [
                "ExecStart=/home/ann/bin/twinbay agent --state-dir /home/ann/state --watch /etc/nginx",
                "ReadWritePaths=/home/ann/state /home/ann/bin",
            ]
        );
        // The packaged file holds each filled-in setting once, so nothing else changes.
        for key in ["ExecStart=", "ReadWritePaths="] {
            assert_eq!(USER_UNIT.lines().filter(|l| l.starts_with(key)).count(), 1);
        }
        // No join token, ever.
        assert!(
            unit.lines()
                .all(|l| l.starts_with('#') || !l.contains("--join"))
        );
    }

    #[test]
    fn paths_with_spaces_percent_and_dollar_are_quoted_and_escaped() {
        let l = layout("/home/a b/50%$x");
        let args = agent_command(&l, &[], &[]).unwrap();
        let unit = render_unit(&l, &args).unwrap();
        assert!(unit.contains(
            r#"ExecStart="/home/a b/50%%$$x/bin/twinbay" agent --state-dir "/home/a b/50%%$$x/state""#
        ));
        assert!(unit.contains(r#"ReadWritePaths="/home/a b/50%%$x/state" "/home/a b/50%%$x/bin""#));
        for bad in ["/home/a\"b", "/home/a\\b", "/home/a\nb"] {
            let err = render_unit(&layout(bad), &[]).unwrap_err();
            assert!(err.to_string().contains("would change"), "{err}");
        }
    }

    #[test]
    fn agent_arguments_are_checked_and_a_join_token_is_kept_out() {
        let l = layout("/x");
        let ok = agent_command(&l, &[], &["--label".into(), "env=prod".into()]).unwrap();
        assert_eq!(
            ok,
            ["agent", "--state-dir", "/x/state", "--label", "env=prod"]
        );
        let err = agent_command(&l, &[], &["--intervall".into(), "5s".into()]).unwrap_err();
        assert!(
            err.to_string().starts_with("the agent's arguments: "),
            "{err}"
        );
        let err = agent_command(&l, &[], &["--join=abc".into()]).unwrap_err();
        assert!(
            err.to_string().contains("must not hold the join token"),
            "{err}"
        );
    }

    /// The packaged units pass `systemd-analyze verify` (skipped, and says
    /// so, where it is not installed). The user unit needs its binary in
    /// place: a stand-in executable under a fake HOME.
    #[test]
    fn the_packaged_units_pass_systemd_analyze_verify() {
        let Some(analyze) = which("systemd-analyze") else {
            eprintln!("systemd-analyze is not installed: packaged units not verified");
            return;
        };
        let root = std::env::temp_dir().join(format!("twinbay-units-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let home = root.join("home");
        let runtime = root.join("run");
        for d in [
            home.join(".local/share/twinbay/bin"),
            home.join(".local/state/twinbay-agent"),
            runtime.clone(),
        ] {
            fs::create_dir_all(&d).unwrap();
        }
        fs::copy("/bin/true", home.join(".local/share/twinbay/bin/twinbay")).unwrap();
        // The user units: the agent's (what install writes) and the hub's.
        fs::create_dir_all(home.join(".local/state/twinbay")).unwrap();
        for (name, text) in [
            (UNIT_NAME, USER_UNIT),
            ("twinbay-hub.service", USER_HUB_UNIT),
        ] {
            let unit = root.join("user").join(name);
            fs::create_dir_all(unit.parent().unwrap()).unwrap();
            fs::write(&unit, text).unwrap();
            let out = Command::new(&analyze)
                .args(["verify", "--user"])
                .arg(&unit)
                .env("HOME", &home)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env_remove("XDG_STATE_HOME")
                .env_remove("XDG_CONFIG_HOME")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.trim().is_empty(),
                "{name}: {stderr}"
            );
        }
        // Hardened, with writes only where an update and the state need them.
        for text in [USER_HUB_UNIT, HUB_UNIT] {
            for line in [
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ReadWritePaths=",
            ] {
                assert!(text.contains(line), "{line}");
            }
        }

        // The system units, with their binary under the temp dir instead of
        // /usr/local/lib (verify wants it executable).
        for (name, text) in [
            ("twinbay-hub.service", HUB_UNIT),
            ("twinbay-agent.service", SYSTEM_AGENT_UNIT),
        ] {
            let prefix = root.join("lib/");
            let text = text.replace("/usr/local/lib/twinbay/", prefix.to_str().unwrap());
            for dir in ["hub", "agent"] {
                fs::create_dir_all(prefix.join(dir)).unwrap();
                fs::copy("/bin/true", prefix.join(dir).join("twinbay")).unwrap();
            }
            let unit = root.join(name);
            fs::write(&unit, text).unwrap();
            let out = Command::new(&analyze)
                .arg("verify")
                .arg(&unit)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.trim().is_empty(),
                "{name}: {stderr}"
            );
        }
        let _ = fs::remove_dir_all(&root);
    }

    const HUB_UNIT: &str = include_str!("../../../packaging/systemd/twinbay-hub.service");
    const USER_HUB_UNIT: &str = include_str!("../../../packaging/systemd/twinbay-hub.user.service");
    const SYSTEM_AGENT_UNIT: &str =
        include_str!("../../../packaging/systemd/twinbay-agent.service");

    fn which(name: &str) -> Option<PathBuf> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    }
}
