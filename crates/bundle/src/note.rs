//! Signed notes: a document of the lab's (the receipt or dispatch note of the travelling standard)
//! signed on its own, so the pilot checks it with the same stock commands as a bundle:
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I <lab> -n tsagent-bundle-v1 -s SHA256SUMS.sig < SHA256SUMS
//! sha256sum -c SHA256SUMS
//! ```
//!
//! The folder holds `note.txt`, `SHA256SUMS` (its one line) and `SHA256SUMS.sig`. The namespace is
//! the bundles' (the pilot's `allowed_signers` restricts the lab's key to it); a note can never
//! pass for a bundle, whose `SHA256SUMS` must list three or four other files.

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::NAMESPACE;
use super::manifest::Hash32;
use super::seal::SealError;

/// The note's file name in its folder.
pub const NOTE_FILE: &str = "note.txt";

/// The signed files of a note besides the note itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// `SHA256SUMS`: one line, `<sha256>  note.txt`, as `sha256sum` prints it.
    pub sums: Vec<u8>,
    /// `SHA256SUMS.sig`: SSHSIG over `sums`.
    pub sig: Vec<u8>,
}

/// Signs `text` as `note.txt`. Deterministic for the same text and key (Ed25519).
pub fn sign_note(text: &[u8], key: &PrivateKey) -> Result<SignedNote, SealError> {
    let hash: [u8; 32] = Sha256::digest(text).into();
    let sums = format!("{}  {NOTE_FILE}\n", Hash32(hash));
    let signature = key
        .sign(NAMESPACE, HashAlg::Sha512, sums.as_bytes())
        .map_err(|e| SealError::Sign(e.into()))?;
    let sig = signature
        .to_pem(LineEnding::LF)
        .map_err(|e| SealError::Sign(e.into()))?
        .into_bytes();
    Ok(SignedNote {
        sums: sums.into_bytes(),
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_signed_over_its_one_sums_line_and_is_no_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        crate::generate_key(&path, "k").unwrap();
        let key = crate::load_signing_key(&path).unwrap();
        let note = sign_note("接收 / received\n".as_bytes(), &key).unwrap();
        let text = String::from_utf8(note.sums.clone()).unwrap();
        assert!(
            text.ends_with("  note.txt\n") && text.len() == 64 + 2 + 8 + 1,
            "{text}"
        );
        assert_eq!(
            sign_note("接收 / received\n".as_bytes(), &key).unwrap(),
            note
        );
        assert!(
            crate::sums::parse(&note.sums).is_err(),
            "not a bundle's sums"
        );
        let sig = ssh_key::SshSig::from_pem(&note.sig).unwrap();
        key.public_key()
            .verify(NAMESPACE, &note.sums, &sig)
            .unwrap();
    }
}
