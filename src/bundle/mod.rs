//! Signed measurement bundles: sealing readings into a tar the pilot lab can verify with stock tools.

pub mod csv;
pub mod manifest;
pub mod tar;
pub mod records;
pub mod signers;
