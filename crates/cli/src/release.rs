//! `twinbay ctl release publish|list|keygen`: signed releases on the hub
//! (docs/updates.md). `publish` sends the binary and its minisign signature
//! (a `.minisig` file, or made here with `--key`); the hub refuses it unless
//! the signature verifies against a key it trusts (`--update-key`). Without
//! `--token` it uses a short-lived admin token minted from `--data-dir`, as
//! `ctl api-token create` would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use hyper::body::Bytes;

use crate::args::RemoteArgs;

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    pub command: ReleaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Publish a signed twinbay binary the fleet can be updated to (admin).
    Publish {
        #[command(flatten)]
        remote: OptionalTokenRemote,
        /// The binary.
        #[arg(long)]
        file: PathBuf,
        /// Its version.
        #[arg(long)]
        version: String,
        /// The architecture it is built for (default: this machine's).
        #[arg(long, default_value = std::env::consts::ARCH)]
        arch: String,
        /// Its minisign signature (`minisign -Sm FILE` makes FILE.minisig).
        #[arg(long, required_unless_present = "key", conflicts_with = "key")]
        sig: Option<PathBuf>,
        /// Sign it here with this unencrypted minisign secret key file; the
        /// signed comment names the version and architecture.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Release notes.
        #[arg(long)]
        notes: Option<String>,
        /// The oldest hub version it works with.
        #[arg(long)]
        min_hub_version: Option<String>,
    },
    /// The published releases, newest first.
    List {
        #[command(flatten)]
        remote: OptionalTokenRemote,
    },
    /// Make a signing key pair: DIR/minisign.pub (for `--update-key`) and an
    /// unencrypted DIR/minisign.key (mode 0600, for `publish --key`).
    Keygen {
        /// The directory to write them into (made if missing); existing
        /// key files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `RemoteArgs` whose token may be left out on the hub's machine.
#[derive(Debug, Args)]
pub struct OptionalTokenRemote {
    /// The hub's URL; by default the public URL of the hub in --data-dir.
    #[arg(long, env = "TWINBAY_HUB")]
    pub hub: Option<String>,
    /// The hub certificate's SHA-256 fingerprint; read from --data-dir when not given.
    #[arg(long, env = "TWINBAY_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// An API token; without one, a 10-minute admin token is minted from --data-dir.
    #[arg(long, env = "TWINBAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl OptionalTokenRemote {
    async fn client(self, data_dir: &Path) -> Result<crate::remote::Remote> {
        self.client_as(data_dir, "ctl release").await
    }

    /// The client, with a minted token named `name` when none is given.
    pub(crate) async fn client_as(
        self,
        data_dir: &Path,
        name: &str,
    ) -> Result<crate::remote::Remote> {
        let token = match self.token {
            Some(t) => t,
            None => twinbay_hub::admin::create_api_token(
                data_dir,
                twinbay_hub::store::Role::Admin,
                name,
                Some(Duration::from_secs(600)),
                None,
                false,
            )
            .await
            .map_err(|e| anyhow!(twinbay_hub::report(&e)))
            .context("no --token, and no admin token from --data-dir")?,
        };
        let remote = RemoteArgs {
            hub: self.hub,
            fingerprint: self.fingerprint,
            token,
            wait: Duration::ZERO,
        };
        crate::commands::remote_client(data_dir, &remote).await
    }
}

pub async fn run(data_dir: &Path, args: ReleaseArgs) -> Result<String> {
    match args.command {
        ReleaseCommand::Publish {
            remote,
            file,
            version,
            arch,
            sig,
            key,
            notes,
            min_hub_version,
        } => {
            let binary =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let signature = match (sig, key) {
                (Some(sig), _) => {
                    let bytes = std::fs::read(&sig)
                        .with_context(|| format!("reading {}", sig.display()))?;
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if bytes.len() > 4096 || minisign::SignatureBox::from_string(&text).is_err() {
                        bail!(
                            "{} is not a minisign signature (a .minisig file)",
                            sig.display()
                        );
                    }
                    text
                }
                (None, Some(key)) => sign(&key, &binary, &version, &arch)?,
                (None, None) => bail!("give --sig FILE or --key FILE"),
            };
            let mut query = vec![("version", version), ("arch", arch)];
            query.extend(notes.map(|n| ("notes", n)));
            query.extend(min_hub_version.map(|v| ("min_hub_version", v)));
            let query: Vec<String> = query
                .into_iter()
                .map(|(k, v)| format!("{k}={}", percent(&v)))
                .collect();
            let header = base64::engine::general_purpose::STANDARD.encode(signature.as_bytes());
            let client = remote.client(data_dir).await?;
            // The hub refuses a non-admin before it reads the upload, and
            // an HTTP client sending a large body sees that as a reset: ask first.
            let me = client.get("/api/v1/session").await?;
            if me["role"] != "admin" {
                bail!(
                    "publishing a release needs an admin token (this one is {})",
                    me["role"].as_str().unwrap_or("unknown")
                );
            }
            let m = client
                .upload(
                    &format!("/api/v1/releases?{}", query.join("&")),
                    "application/octet-stream",
                    &[("x-twinbay-signature", header)],
                    Bytes::from(binary),
                )
                .await
                .context("publishing the release")?;
            Ok(format!(
                "published {} for {}: {} bytes, sha256 {}, signed by {}",
                m["version"].as_str().unwrap_or_default(),
                m["arch"].as_str().unwrap_or_default(),
                m["size"],
                m["sha256"].as_str().unwrap_or_default(),
                m["key"].as_str().unwrap_or_default()
            ))
        }
        ReleaseCommand::Keygen { out } => keygen(&out),
        ReleaseCommand::List { remote } => {
            let list = remote
                .client(data_dir)
                .await?
                .get("/api/v1/releases")
                .await?;
            let rows: Vec<String> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{}\t{}\t{} bytes\t{}",
                        m["version"].as_str().unwrap_or_default(),
                        m["arch"].as_str().unwrap_or_default(),
                        m["size"],
                        m["sha256"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            Ok(if rows.is_empty() {
                "no releases".into()
            } else {
                rows.join("\n")
            })
        }
    }
}

/// Writes a new key pair into `dir`: `minisign.pub` and an unencrypted
/// `minisign.key` (0600), refusing to replace either.
fn keygen(dir: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let (pub_path, key_path) = (dir.join("minisign.pub"), dir.join("minisign.key"));
    for p in [&pub_path, &key_path] {
        if p.symlink_metadata().is_ok() {
            bail!("{} exists: not overwriting a key", p.display());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| anyhow!("making a key pair: {e}"))?;
    let public = pair.pk.to_base64();
    let pub_text = pair
        .pk
        .to_box()
        .map_err(|e| anyhow!("encoding the public key: {e}"))?
        .into_string();
    let key_text = pair
        .sk
        .to_box(Some("twinbay release signing key (unencrypted)"))
        .map_err(|e| anyhow!("encoding the secret key: {e}"))?
        .into_string();
    let write = |path: &Path, text: &str, mode: u32| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", path.display()))
    };
    write(&key_path, &key_text, 0o600)?;
    if let Err(e) = write(&pub_path, &pub_text, 0o644) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(format!(
        "wrote {} and {} (unencrypted, mode 0600: keep it safe)\npublic key {public}: trust it with `--update-key {}`, sign with `release publish --key {}`",
        pub_path.display(),
        key_path.display(),
        pub_path.display(),
        key_path.display()
    ))
}

/// A minisign signature of `binary` with the secret key in `key_file`,
/// whose signed comment names the version and architecture.
fn sign(key_file: &Path, binary: &[u8], version: &str, arch: &str) -> Result<String> {
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading {}", key_file.display()))?;
    let boxed = minisign::SecretKeyBox::from_string(&text)
        .map_err(|e| anyhow!("{}: {e}", key_file.display()))?;
    let sk = boxed.into_unencrypted_secret_key().map_err(|e| {
        anyhow!(
            "{}: {e} (an unencrypted key is needed: minisign -G -W)",
            key_file.display()
        )
    })?;
    let comment = format!(
        "version:{version} arch:{arch} timestamp:{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let sig = minisign::sign(None, &sk, binary, Some(&comment), None)
        .map_err(|e| anyhow!("signing: {e}"))?;
    Ok(sig.into_string())
}

/// `s` for a URL query.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
