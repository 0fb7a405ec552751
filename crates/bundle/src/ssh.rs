//! `ssh-key`'s errors as this crate shows them.

/// An error from `ssh-key`, shown once.
///
/// `ssh-key`'s errors wrap each other and each level's message repeats the one inside it, so the
/// usual "error: cause: cause" chain would say `PEM error … (×3)`. This shows only the innermost
/// message and has no source of its own.
#[derive(Debug)]
pub struct SshError(pub ssh_key::Error);

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut innermost: &dyn std::error::Error = &self.0;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        write!(f, "{innermost}")
    }
}

impl std::error::Error for SshError {}

impl From<ssh_key::Error> for SshError {
    fn from(e: ssh_key::Error) -> Self {
        Self(e)
    }
}
