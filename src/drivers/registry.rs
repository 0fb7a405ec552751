//! The profiles an agent knows: the built-in ones, compiled in from `drivers/*.toml`, and a lab's
//! own folder of profiles, which may add models or replace built-in ones.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::{parse_profile, with_overrides};
use super::{Profile, ProfileError, Source};

/// Expands to `(id, text)` pairs, the text compiled in from `drivers/<id>.toml`.
macro_rules! builtin {
    ($($id:literal),* $(,)?) => {
        &[$(($id, include_str!(concat!("../../drivers/", $id, ".toml")))),*]
    };
}

/// Every built-in profile as `(id, TOML text)`, sorted by id. The one list of shipped profiles:
/// a new file in `drivers/` is added here.
pub const BUILTIN: &[(&str, &str)] = builtin![
    "fluke-1594a",
    "fluke-5720a",
    "fluke-8508a",
    "generic-scpi-dmm",
    "keithley-2002",
    "keithley-dmm6500",
    "keysight-34465a",
    "keysight-34470a",
    "keysight-3458a",
    "vaisala-ptu300",
];

/// The TOML text of a built-in profile.
pub fn builtin_text(id: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(builtin, _)| *builtin == id)
        .map(|(_, text)| *text)
}

/// Known profiles by id, each with the text it was validated from (so overrides can be merged
/// over it later).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    profile: Profile,
    text: Cow<'static, str>,
}

impl Registry {
    /// The built-in profiles. Fails only if a shipped profile is invalid, which the test suite
    /// rules out.
    pub fn builtin() -> Result<Registry, ProfileError> {
        let mut entries = BTreeMap::new();
        for (id, text) in BUILTIN {
            let profile = parse_profile(text, Source::Builtin((*id).to_owned()))?;
            entries.insert(
                (*id).to_owned(),
                Entry {
                    profile,
                    text: Cow::Borrowed(text),
                },
            );
        }
        Ok(Registry { entries })
    }

    /// The built-in profiles plus every `*.toml` in `dir`, which replace built-in profiles of the
    /// same id.
    pub fn with_dir(dir: &Path) -> Result<Registry, ProfileError> {
        let mut registry = Registry::builtin()?;
        registry.add_dir(dir)?;
        Ok(registry)
    }

    /// Adds every `*.toml` in `dir` (not recursing), replacing profiles of the same id. All
    /// files are validated before any is added, so on error the registry is unchanged; the error
    /// names the file.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), ProfileError> {
        let list_error = |source| ProfileError::ReadDir {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_error)? {
            let path = entry.map_err(list_error)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        // Sorted, so which file's error is reported first does not depend on the file system.
        paths.sort();
        let mut loaded = Vec::with_capacity(paths.len());
        for path in paths {
            let text = tsagent_bundle::file::read_regular_text(
                "driver profile",
                &path,
                super::MAX_PROFILE_BYTES,
            )?;
            let profile = parse_profile(&text, Source::File(path))?;
            loaded.push(Entry {
                profile,
                text: Cow::Owned(text),
            });
        }
        for entry in loaded {
            self.entries.insert(entry.profile.id.clone(), entry);
        }
        Ok(())
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.entries.get(id).map(|e| &e.profile)
    }

    /// The TOML text a profile was validated from.
    pub fn text(&self, id: &str) -> Option<&str> {
        self.entries.get(id).map(|e| e.text.as_ref())
    }

    /// Every profile, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.entries.values().map(|e| &e.profile)
    }

    /// Every id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The profile `id` with a lab's overrides merged over its text (see
    /// [`with_overrides`](super::with_overrides)).
    pub fn with_overrides(
        &self,
        id: &str,
        overrides: &toml::Table,
        overrides_origin: &str,
    ) -> Result<Profile, ProfileError> {
        let entry = self.entries.get(id).ok_or_else(|| ProfileError::Unknown {
            id: id.to_owned(),
            known: self.ids().collect::<Vec<_>>().join(", "),
        })?;
        with_overrides(
            &entry.text,
            entry.profile.source.clone(),
            overrides,
            overrides_origin,
        )
    }
}
