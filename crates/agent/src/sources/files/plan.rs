//! What to watch: the `--watch` specs (files, directories, globs), minus
//! the excludes, plus discovered files (compose, units), within the cap;
//! and which directories to watch so that every one of them is seen.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::Origin;

/// How deep a watched directory is followed.
pub const MAX_DEPTH: usize = 8;
/// Directory entries looked at per plan, at most (a `--watch /` stops here).
pub const WALK_BUDGET: usize = 200_000;

/// Names skipped inside watched directories and globs: editor and tool
/// leftovers that come and go with every save.
const SKIPPED_NAMES: &[&str] = &[
    "*~", "*.swp", "*.swo", "*.swx", ".#*", "#*#", "4913", "*.tmp",
];
const SKIPPED_DIRS: &[&str] = &[".git", ".hg", ".svn", "node_modules"];

/// One `--watch` (or policy `watch:`) entry.
#[derive(Debug, Clone)]
pub enum Spec {
    /// A file or a directory (decided when it is looked at: a missing path
    /// is watched as a file).
    Path(PathBuf),
    Glob {
        pattern: glob::Pattern,
        /// The longest leading part without glob characters.
        prefix: PathBuf,
    },
}

impl Spec {
    /// An absolute path or glob (relative ones are taken from the current
    /// directory).
    pub fn parse(s: &str) -> Result<Spec, String> {
        let path = std::path::absolute(s).map_err(|e| format!("watch {s:?}: {e}"))?;
        let text = path
            .to_str()
            .ok_or_else(|| format!("watch {s:?}: not UTF-8"))?
            .to_string();
        if !text.contains(['*', '?', '[']) {
            return Ok(Spec::Path(path));
        }
        let pattern =
            glob::Pattern::new(&text).map_err(|e| format!("watch {s:?}: bad glob: {e}"))?;
        let prefix: PathBuf = path
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        Ok(Spec::Glob { pattern, prefix })
    }

    /// Whether an event on `path` (not a watched file) may change what this
    /// spec matches.
    fn concerns(&self, path: &Path) -> bool {
        match self {
            Spec::Path(p) => path.starts_with(p) || p.starts_with(path),
            Spec::Glob { prefix, .. } => path.starts_with(prefix) || prefix.starts_with(path),
        }
    }
}

/// The outcome of planning.
#[derive(Debug, Default)]
pub struct Plan {
    /// Path → (origin, named). Named files stay in the twin when missing;
    /// files found in a directory or by a glob leave it when deleted.
    pub files: BTreeMap<PathBuf, (Origin, bool)>,
    pub dirs: BTreeSet<PathBuf>,
    /// Files seen but not watched: the cap was reached.
    pub over_cap: usize,
    /// The walk stopped at [`WALK_BUDGET`] entries.
    pub truncated: bool,
}

struct Planner<'a> {
    plan: Plan,
    excludes: &'a [glob::Pattern],
    skipped: Vec<glob::Pattern>,
    max_files: usize,
    budget: usize,
}

impl Planner<'_> {
    fn excluded(&self, path: &Path) -> bool {
        let Some(text) = path.to_str() else {
            return true; // the twin keys files by UTF-8 paths
        };
        self.excludes.iter().any(|p| p.matches(text))
    }

    fn add(&mut self, path: PathBuf, origin: Origin, named: bool) {
        if self.plan.files.contains_key(&path) || self.excluded(&path) {
            return;
        }
        if self.plan.files.len() >= self.max_files {
            self.plan.over_cap += 1;
            return;
        }
        self.plan.files.insert(path, (origin, named));
    }

    /// A named file: watch its directory, or the nearest one that exists.
    fn named(&mut self, path: &Path, origin: Origin) {
        if self.plan.files.contains_key(path) || self.excluded(path) {
            return;
        }
        self.watch_nearest(path.parent().unwrap_or(Path::new("/")));
        self.add(path.to_path_buf(), origin, true);
    }

    fn watch_nearest(&mut self, dir: &Path) {
        let mut d = dir;
        loop {
            if d.is_dir() {
                self.plan.dirs.insert(d.to_path_buf());
                return;
            }
            match d.parent() {
                Some(p) => d = p,
                None => return,
            }
        }
    }

    fn skipped_name(&self, name: &str) -> bool {
        self.skipped.iter().any(|p| p.matches(name))
    }

    fn walk(&mut self, dir: &Path, depth: usize) {
        if self.excluded(dir) {
            return;
        }
        self.plan.dirs.insert(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<_> = Vec::new();
        for e in entries.flatten() {
            if self.budget == 0 {
                self.plan.truncated = true;
                break;
            }
            self.budget -= 1;
            names.push((e.file_name(), e.file_type().ok()));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, ft) in names {
            let Some(n) = name.to_str() else { continue };
            let path = dir.join(&name);
            // Follow symlinks to files (sites-enabled → sites-available),
            // never to directories (loops).
            let is_dir = ft.is_some_and(|t| t.is_dir());
            if is_dir {
                if !SKIPPED_DIRS.contains(&n) {
                    subdirs.push(path);
                }
            } else if !self.skipped_name(n) && path.is_file() {
                self.add(path, Origin::Watch, false);
            }
        }
        if depth < MAX_DEPTH {
            for d in subdirs {
                self.walk(&d, depth + 1);
            }
        }
    }

    fn glob(&mut self, pattern: &glob::Pattern, prefix: &Path) {
        self.watch_nearest(prefix);
        let text = pattern.as_str();
        // The directories the pattern's parent part matches, so a file that
        // appears in one is seen.
        if let Some((parent, _)) = text.rsplit_once('/')
            && parent.contains(['*', '?', '['])
            && let Ok(dirs) = glob::glob(parent)
        {
            for d in dirs.flatten().take(self.budget) {
                self.budget = self.budget.saturating_sub(1);
                if d.is_dir() {
                    self.plan.dirs.insert(d);
                }
            }
        }
        let Ok(matches) = glob::glob(text) else {
            return;
        };
        for m in matches.flatten() {
            if self.budget == 0 {
                self.plan.truncated = true;
                break;
            }
            self.budget -= 1;
            let name = m.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if m.is_file() && !self.skipped_name(name) {
                if let Some(parent) = m.parent() {
                    self.plan.dirs.insert(parent.to_path_buf());
                }
                self.add(m, Origin::Watch, false);
            }
        }
    }
}

/// Plans what to watch. Order is priority under the cap: named `--watch`
/// files, discovered files, then directory contents and glob matches.
pub fn plan(
    specs: &[Spec],
    excludes: &[glob::Pattern],
    discovered: &BTreeMap<PathBuf, Origin>,
    max_files: usize,
) -> Plan {
    let mut p = Planner {
        plan: Plan::default(),
        excludes,
        skipped: SKIPPED_NAMES
            .iter()
            .filter_map(|s| glob::Pattern::new(s).ok())
            .collect(),
        max_files,
        budget: WALK_BUDGET,
    };
    let mut dirs = Vec::new();
    for spec in specs {
        if let Spec::Path(path) = spec {
            if path.is_dir() {
                dirs.push(path.clone());
            } else {
                p.named(path, Origin::Watch);
            }
        }
    }
    for (path, origin) in discovered {
        p.named(path, *origin);
    }
    for dir in dirs {
        // Its parent too, so the directory's own removal and return are seen.
        if let Some(parent) = dir.parent() {
            p.plan.dirs.insert(parent.to_path_buf());
        }
        p.walk(&dir, 0);
    }
    for spec in specs {
        if let Spec::Glob { pattern, prefix } = spec {
            p.glob(pattern, prefix);
        }
    }
    p.plan
}

/// Whether an event on `path`, which is not a watched file, may change the
/// plan: it is under (or above) a spec, or above a named file.
pub fn concerns(specs: &[Spec], named: &HashSet<PathBuf>, path: &Path) -> bool {
    specs.iter().any(|s| s.concerns(path)) || named.iter().any(|n| n.starts_with(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("twinbay-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn parses_paths_and_globs() {
        assert!(
            matches!(Spec::parse("/etc/hosts").unwrap(), Spec::Path(p) if p == Path::new("/etc/hosts"))
        );
        match Spec::parse("/srv/*/compose.yaml").unwrap() {
            Spec::Glob { prefix, .. } => assert_eq!(prefix, Path::new("/srv")),
            other => panic!("{other:?}"),
        }
        assert!(Spec::parse("/srv/[").is_err());
        assert!(matches!(Spec::parse("rel").unwrap(), Spec::Path(p) if p.is_absolute()));
    }

    #[test]
    fn plans_files_dirs_globs_excludes_and_the_cap() {
        let d = tmp("plan");
        std::fs::create_dir_all(d.join("conf/sub")).unwrap();
        std::fs::create_dir_all(d.join("conf/.git")).unwrap();
        std::fs::create_dir_all(d.join("srv/a")).unwrap();
        std::fs::create_dir_all(d.join("srv/b")).unwrap();
        for f in [
            "conf/a.conf",
            "conf/b.conf~",
            "conf/sub/c.conf",
            "conf/x.bak",
            "conf/.git/HEAD",
            "srv/a/compose.yaml",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let specs = [
            Spec::parse(d.join("missing/later.conf").to_str().unwrap()).unwrap(),
            Spec::parse(d.join("conf").to_str().unwrap()).unwrap(),
            Spec::parse(d.join("srv/*/compose.yaml").to_str().unwrap()).unwrap(),
        ];
        let excludes = [glob::Pattern::new("*.bak").unwrap()];
        let mut discovered = BTreeMap::new();
        discovered.insert(d.join("units/web.service"), Origin::Unit);
        let p = plan(&specs, &excludes, &discovered, 100);
        let files: Vec<_> = p
            .files
            .iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix(&d).unwrap().to_str().unwrap().to_string(),
                    *v,
                )
            })
            .collect();
        assert_eq!(
            files,
            vec![
                ("conf/a.conf".into(), (Origin::Watch, false)),
                ("conf/sub/c.conf".into(), (Origin::Watch, false)),
                ("missing/later.conf".into(), (Origin::Watch, true)),
                ("srv/a/compose.yaml".into(), (Origin::Watch, false)),
                ("units/web.service".into(), (Origin::Unit, true)),
            ]
        );
        for dir in ["", "conf", "conf/sub", "srv", "srv/a", "srv/b"] {
            assert!(p.dirs.contains(&d.join(dir)), "{dir}: {:?}", p.dirs);
        }
        assert!(!p.dirs.contains(&d.join("conf/.git")));
        assert_eq!(p.over_cap, 0);

        let p = plan(&specs, &excludes, &discovered, 2);
        assert_eq!(p.files.len(), 2);
        assert!(
            p.files.contains_key(&d.join("missing/later.conf")),
            "named files come first"
        );
        assert!(p.files.contains_key(&d.join("units/web.service")));
        assert_eq!(p.over_cap, 3);

        let named: HashSet<PathBuf> = [d.join("missing/later.conf")].into();
        assert!(concerns(&specs, &named, &d.join("missing")));
        assert!(concerns(&specs, &named, &d.join("srv/c")));
        assert!(!concerns(&specs, &named, &d.join("elsewhere")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
