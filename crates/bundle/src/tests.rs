//! End-to-end tests of sealing and verifying, including the stock-tool path.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::tar::{BundleFiles, TarError, TarLimits, raw_header, read_tar, write_tar};
use super::*;
use crate::chain::{GENESIS, ReadingRecord, ReadingStatus};

const LAB: &str = "LAB1";

fn key_in(dir: &Path, name: &str) -> PrivateKey {
    let path = dir.join(name);
    generate_key(&path, name).unwrap();
    load_signing_key(&path).unwrap()
}

fn signers_for(entries: &[(&str, &PrivateKey)]) -> AllowedSigners {
    let text: String = entries
        .iter()
        .map(|(principal, key)| allowed_signers_line(principal, key.public_key()).unwrap() + "\n")
        .collect();
    AllowedSigners::parse(&text).unwrap()
}

fn instrument() -> InstrumentInfo {
    InstrumentInfo {
        id: 1,
        name: "dmm".into(),
        resource: "tcp://10.0.0.5:5025".into(),
        manufacturer: "KEYSIGHT".into(),
        model: "3458A".into(),
        serial: "MY123".into(),
        firmware: "9.2".into(),
    }
}

/// `n` chained readings starting at `first_seq`, from `chain_prev`.
fn readings(first_seq: u64, n: u64, chain_prev: [u8; 32]) -> Vec<ReadingExport> {
    let mut chain = chain_prev;
    (first_seq..first_seq + n)
        .map(|seq| {
            let overload = seq % 3 == 0;
            let record = ReadingRecord {
                seq,
                run_id: 7,
                instrument_id: 1,
                quantity: "voltage".into(),
                value: (!overload).then_some(10.0 + seq as f64 * 1e-7),
                status: if overload {
                    ReadingStatus::Overload
                } else {
                    ReadingStatus::Valid
                },
                unit: "V".into(),
                raw: if overload {
                    "+9.9E37".into()
                } else {
                    format!("+1.000000{seq}E+01")
                },
                utc_us: 1_700_000_000_000_000 + seq as i64 * 100_000,
                mono_ns: seq * 100_000_000,
                boot_id: "4f1c, \"boot\"".into(),
            };
            chain = record.chain_after(&chain);
            ReadingExport {
                record,
                chain,
                sequence: "zener daily".into(),
                instrument: "dmm".into(),
            }
        })
        .collect()
}

fn input() -> SealInput {
    SealInput {
        lab_id: LAB.into(),
        lab_name: "Lab One".into(),
        artefact: ArtefactInfo {
            id: "ZEN-7".into(),
            kind: "zener".into(),
            serial: "Z42".into(),
            nominal: 10.0,
            unit: "V".into(),
        },
        bundle_seq: 1,
        prev_sums_sha256: None,
        chain_prev: GENESIS,
        readings: readings(1, 3, GENESIS),
        events: vec![EventExport {
            id: 11,
            utc_us: 1_700_000_000_050_000,
            run_id: Some(7),
            instrument: Some("dmm".into()),
            kind: "instrument_online".into(),
            detail: serde_json::json!({"idn": "KEYSIGHT,3458A,MY123,9.2"}),
        }],
        instruments: vec![instrument()],
        sequences_sha256: [0x5e; 32],
        created_utc_us: 1_700_000_360_123_456,
        agent_version: "0.1.0".into(),
        custody: manifest::CustodyInfo {
            state: "official_window".into(),
            damage_blocks: false,
            received_utc: Some("2023-11-14T00:00:00.000000Z".into()),
            gate_opened_utc: Some("2023-11-14T22:13:20.000000Z".into()),
            count: 0,
        },
        traceability: vec![manifest::Traceability {
            instrument: "dmm".into(),
            certificate: "CAL-2023-117".into(),
            calibrated: "2023-01-10".into(),
            due: "2024-01-10".into(),
        }],
        previous_receipt: Some(manifest::ReceiptRef {
            bundle_seq: 0,
            log_index: 41,
            tree_size: 57,
            root: manifest::Hash32([0x99; 32]),
        }),
    }
}

/// The files of a bundle of format v2: manifest, readings, events, custody, sums, signature.
fn files_of(tar: &[u8]) -> (String, [Vec<u8>; 6]) {
    let b = read_tar(tar, TarLimits::DEFAULT).unwrap();
    let f = b.files;
    (
        b.folder,
        [
            f.manifest,
            f.readings,
            f.events,
            f.custody.unwrap(),
            f.sums,
            f.sig,
        ]
        .map(<[u8]>::to_vec),
    )
}

fn pack(folder: &str, [manifest, readings, events, custody, sums, sig]: &[Vec<u8>; 6]) -> Vec<u8> {
    let files = BundleFiles {
        manifest,
        readings,
        events,
        custody: Some(custody),
        sums,
        sig,
    };
    write_tar(folder, &files, 0).unwrap()
}

/// Rebuilds a bundle from edited files with fresh sums and a valid signature by `key`, so the
/// content checks behind the signature get exercised.
fn resign(folder: &str, mut files: [Vec<u8>; 6], key: &PrivateKey, namespace: &str) -> Vec<u8> {
    let hash = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    let text = sums::render(&sums::Sums {
        custody: Some(hash(&files[3])),
        events: hash(&files[2]),
        manifest: hash(&files[0]),
        readings: hash(&files[1]),
        attachments: Vec::new(),
    });
    let sig = key
        .sign(namespace, HashAlg::Sha512, text.as_bytes())
        .unwrap();
    files[4] = text.into_bytes();
    files[5] = sig.to_pem(LineEnding::LF).unwrap().into_bytes();
    pack(folder, &files)
}

#[test]
fn seal_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab_key");
    let sealed = seal(&input(), &key).unwrap();
    assert_eq!(sealed.name, "LAB1-ZEN-7-000001");
    assert_eq!(sealed.file_name, "LAB1-ZEN-7-000001.tar");
    assert_eq!(sealed.manifest.readings.count, 3);
    assert_eq!(sealed.manifest.events.first_id, Some(11));
    assert_eq!(
        seal(&input(), &key).unwrap().tar,
        sealed.tar,
        "sealing is deterministic"
    );

    let signers = signers_for(&[(LAB, &key)]);
    let verified = verify(&sealed.tar, &signers, Some(LAB)).unwrap();
    assert_eq!(verified.principal, LAB);
    assert_eq!(verified.readings, 3);
    assert_eq!(verified.manifest, sealed.manifest);
    assert_eq!(verified.sums_sha256, sealed.sums_sha256);
    assert_eq!(verify(&sealed.tar, &signers, None).unwrap(), verified);

    // The next bundle links to this one and continues the chain.
    let mut next = input();
    next.bundle_seq = 2;
    next.prev_sums_sha256 = Some(sealed.sums_sha256);
    next.chain_prev = sealed.manifest.readings.chain_last.0;
    next.readings = readings(4, 2, next.chain_prev);
    next.events.clear();
    let sealed2 = seal(&next, &key).unwrap();
    let verified2 = verify(&sealed2.tar, &signers, Some(LAB)).unwrap();
    assert_eq!(
        verified2.manifest.prev_sha256sums.map(|h| h.0),
        Some(sealed.sums_sha256)
    );
    assert_eq!(
        verified2.manifest.events,
        manifest::EventsSummary {
            count: 0,
            first_id: None,
            last_id: None
        }
    );
}

#[test]
fn manifest_layout() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let sealed = seal(&input(), &key).unwrap();
    let (_, files) = files_of(&sealed.tar);
    let text = String::from_utf8(files[0].clone()).unwrap();
    assert!(
        text.ends_with("}\n") && text.starts_with("{\n  \"format\": \"tsagent-bundle-v3\",\n"),
        "{text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["created_utc"], "2023-11-14T22:19:20.123456Z");
    assert_eq!(value["prev_sha256sums"], serde_json::Value::Null);
    assert_eq!(
        value["agent"],
        serde_json::json!({"name": "tsagent", "version": "0.1.0"})
    );
    assert_eq!(value["readings"]["chain_prev"], "0".repeat(64));
    assert_eq!(value["sequences_sha256"], "5e".repeat(32));
    let readings_csv = String::from_utf8(files[1].clone()).unwrap();
    assert!(readings_csv.starts_with(
        "seq,run_id,sequence,instrument_id,instrument,quantity,value,status,unit,raw,utc,utc_us,mono_ns,boot_id,chain\n\
         1,7,zener daily,1,dmm,voltage,10.0000001,valid,V,+1.0000001E+01,2023-11-14T22:13:20.100000Z,1700000000100000,100000000,\"4f1c, \"\"boot\"\"\","
    ), "{readings_csv}");
    assert!(readings_csv.contains(",,overload,"));
}

#[test]
fn stock_tools_verify_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab_key");
    let mut input = input();
    input.events.push(custody_event(12, "custody_note"));
    let sealed = seal(&input, &key).unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = write_file_atomically(out.path(), &sealed.file_name, &sealed.tar).unwrap();
    let run = |cmd: &mut Command| cmd.current_dir(out.path()).status().unwrap().success();
    assert!(run(Command::new("tar").arg("-xf").arg(&path)));
    let folder = out.path().join(&sealed.name);
    let line = allowed_signers_line(LAB, key.public_key()).unwrap();
    std::fs::write(folder.join("allowed_signers"), format!("{line}\n")).unwrap();

    let ssh_verify = |principal: &str, namespace: &str| {
        let sums = std::fs::File::open(folder.join("SHA256SUMS")).unwrap();
        Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-f",
                "allowed_signers",
                "-I",
                principal,
                "-n",
                namespace,
                "-s",
                "SHA256SUMS.sig",
            ])
            .current_dir(&folder)
            .stdin(sums)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(ssh_verify(LAB, NAMESPACE));
    // ssh-keygen signing the same SHA256SUMS with the same key writes the very same bytes (Ed25519
    // is deterministic), so the verifier's canonical-armor rule accepts what OpenSSH produces.
    let resign_dir = tempfile::tempdir().unwrap();
    let copy = resign_dir.path().join("SHA256SUMS");
    std::fs::copy(folder.join("SHA256SUMS"), &copy).unwrap();
    let signed = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(dir.path().join("lab_key"))
        .arg(&copy)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(signed.success());
    assert_eq!(
        std::fs::read(resign_dir.path().join("SHA256SUMS.sig")).unwrap(),
        std::fs::read(folder.join("SHA256SUMS.sig")).unwrap()
    );
    assert!(!ssh_verify("LAB2", NAMESPACE), "wrong principal must fail");
    assert!(!ssh_verify(LAB, "git"), "wrong namespace must fail");
    let sums_ok = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&folder)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(sums_ok);
    let custody = std::fs::read_to_string(folder.join("custody.jsonl")).unwrap();
    assert!(custody.contains("\"custody_note\""), "{custody}");
    // And tampering is caught by the stock tools too, in custody.jsonl as in readings.csv.
    for file in ["custody.jsonl", "readings.csv"] {
        let original = std::fs::read(folder.join(file)).unwrap();
        std::fs::write(folder.join(file), b"tampered\n").unwrap();
        let tampered_ok = Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&folder)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!tampered_ok, "{file}");
        std::fs::write(folder.join(file), original).unwrap();
    }
}

#[test]
fn every_byte_flip_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let mut small = input();
    small.readings.truncate(1);
    small.events.clear();
    small.instruments = vec![InstrumentInfo {
        id: 1,
        name: "dmm".into(),
        ..Default::default()
    }];
    let sealed = seal(&small, &key).unwrap();
    let signers = signers_for(&[(LAB, &key)]);
    assert!(verify(&sealed.tar, &signers, None).is_ok());
    // Bytes inside the hashed files are covered by SHA-256 whatever the flip, so one flip each is
    // enough there (and keeps the debug-build signature checks affordable); everything else (headers,
    // padding, SHA256SUMS, the signature armor, the end blocks) gets several masks.
    let hashed: Vec<std::ops::Range<usize>> = {
        let b = read_tar(&sealed.tar, TarLimits::DEFAULT).unwrap();
        let base = sealed.tar.as_ptr() as usize;
        [b.files.manifest, b.files.readings, b.files.events]
            .iter()
            .map(|f| {
                let start = f.as_ptr() as usize - base;
                start..start + f.len()
            })
            .collect()
    };
    let mut tar = sealed.tar.clone();
    for i in 0..tar.len() {
        let masks: &[u8] = if hashed.iter().any(|r| r.contains(&i)) {
            &[0x01]
        } else {
            &[0x01, 0x20, 0x80, 0xff]
        };
        for &mask in masks {
            tar[i] ^= mask;
            assert!(
                verify(&tar, &signers, None).is_err(),
                "flip {mask:#04x} at byte {i} accepted"
            );
            tar[i] ^= mask;
        }
    }
}

#[test]
fn truncated_or_extended_bundles_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let sealed = seal(&input(), &key).unwrap();
    let signers = signers_for(&[(LAB, &key)]);
    let len = sealed.tar.len();
    for cut in (0..len).step_by(len / 100).chain([len - 1]) {
        let err = verify(&sealed.tar[..cut], &signers, Some(LAB)).unwrap_err();
        assert!(
            matches!(err, VerifyError::Tar(TarError::Truncated { .. })),
            "{cut}: {err:?}"
        );
    }
    let mut appended = sealed.tar.clone();
    appended.extend_from_slice(b"more");
    let err = verify(&appended, &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Tar(TarError::TrailingData { offset }) if offset == len),
        "{err:?}"
    );
}

#[test]
fn hostile_archives_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let sealed = seal(&input(), &key).unwrap();
    let signers = signers_for(&[(LAB, &key)]);
    let insert = |header: [u8; 512]| [&sealed.tar[..512], &header[..], &sealed.tar[512..]].concat();
    let cases = [
        (raw_header(b"../x", b"", b'0', 0), "parent"),
        (raw_header(b"/etc/passwd", b"", b'0', 0), "absolute"),
        (
            raw_header(b"LAB1-ZEN-7-000001/SHA256SUMS", b"", b'2', 0),
            "symlink",
        ),
    ];
    for (header, what) in cases {
        let err = verify(&insert(header), &signers, Some(LAB)).unwrap_err();
        let ok = match what {
            "parent" => matches!(err, VerifyError::Tar(TarError::ParentComponent { .. })),
            "absolute" => matches!(err, VerifyError::Tar(TarError::AbsolutePath { .. })),
            _ => matches!(err, VerifyError::Tar(TarError::Link { .. })),
        };
        assert!(ok, "{what}: {err:?}");
    }
}

#[test]
fn signature_failures_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab1");
    let other = key_in(dir.path(), "lab2");
    let sealed = seal(&input(), &key).unwrap();
    let (folder, files) = files_of(&sealed.tar);
    let signers = signers_for(&[(LAB, &key), ("LAB2", &other)]);

    // Asking for another lab than the manifest names.
    let err = verify(&sealed.tar, &signers, Some("LAB2")).unwrap_err();
    assert!(
        matches!(&err, VerifyError::LabMismatch { expected, found } if expected == "LAB2" && found == LAB),
        "{err:?}"
    );

    // A signature made for another purpose.
    let git = resign(&folder, files.clone(), &key, "git");
    let err = verify(&git, &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(&err, VerifyError::WrongNamespace { found } if found == "git"),
        "{err:?}"
    );

    // Lab 2's key signing lab 1's bundle.
    let forged = resign(&folder, files.clone(), &other, NAMESPACE);
    let err = verify(&forged, &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(&err, VerifyError::KeyNotAllowed { principal, .. } if principal == LAB),
        "{err:?}"
    );

    // A principal without keys, and a key whose validity has ended.
    let only_lab2 = signers_for(&[("LAB2", &other)]);
    let err = verify(&sealed.tar, &only_lab2, Some(LAB)).unwrap_err();
    assert!(
        matches!(&err, VerifyError::UnknownPrincipal { principal } if principal == LAB),
        "{err:?}"
    );
    // Without a lab asked for, the manifest is not read before the signature is checked, so the
    // refusal names the key, which is all that is known then.
    let err = verify(&sealed.tar, &only_lab2, None).unwrap_err();
    assert!(
        matches!(&err, VerifyError::UnknownKey { fingerprint } if *fingerprint == crate::fingerprint(key.public_key())),
        "{err:?}"
    );
    let line = allowed_signers_line(LAB, key.public_key()).unwrap();
    let expiring = line.replace("namespaces=", "valid-before=\"20300101Z\",namespaces=");
    let expiring = AllowedSigners::parse(&expiring).unwrap();
    let before = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let after = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    assert!(verify_at(&sealed.tar, &expiring, Some(LAB), before).is_ok());
    let err = verify_at(&sealed.tar, &expiring, Some(LAB), after).unwrap_err();
    assert!(
        matches!(err, VerifyError::UnknownPrincipal { .. }),
        "{err:?}"
    );

    // Sums changed after signing.
    let mut edited = files.clone();
    edited[4][0] ^= 1;
    let err = verify(&pack(&folder, &edited), &signers, Some(LAB)).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");

    // Armor that parses but is not what the sealer writes.
    let mut crlf = files.clone();
    crlf[5] = String::from_utf8(crlf[5].clone())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let err = verify(&pack(&folder, &crlf), &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::SignatureNotCanonical | VerifyError::SignatureFormat(_)
        ),
        "{err:?}"
    );
    let mut garbage = files.clone();
    garbage[5] = b"not a signature\n".to_vec();
    let err = verify(&pack(&folder, &garbage), &signers, Some(LAB)).unwrap_err();
    assert!(matches!(err, VerifyError::SignatureFormat(_)), "{err:?}");
}

#[test]
fn content_failures_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let signers = signers_for(&[(LAB, &key)]);
    let sealed = seal(&input(), &key).unwrap();
    let (folder, files) = files_of(&sealed.tar);
    let check = |edited: &[Vec<u8>; 6], folder: &str| {
        verify(
            &resign(folder, edited.clone(), &key, NAMESPACE),
            &signers,
            Some(LAB),
        )
        .unwrap_err()
    };
    let text = |i: usize| String::from_utf8(files[i].clone()).unwrap();
    let with = |i: usize, new: String| {
        let mut f = files.clone();
        f[i] = new.into_bytes();
        f
    };

    // A file changed without re-signing.
    let mut edited = files.clone();
    edited[1].push(b'x');
    let err = verify(&pack(&folder, &edited), &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::HashMismatch {
                file: "readings.csv"
            }
        ),
        "{err:?}"
    );

    // Signed, but the content does not add up.
    let err = check(
        &with(1, text(1).replacen("10.0000002", "10.0000003", 1)),
        &folder,
    );
    assert!(
        matches!(
            err,
            VerifyError::Content(ContentError::ChainMismatch { seq: 2 })
        ),
        "{err:?}"
    );
    let csv_text = text(1);
    let lines: Vec<&str> = csv_text.lines().collect();
    let dropped = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
    let err = check(&with(1, dropped), &folder);
    assert!(
        matches!(
            err,
            VerifyError::Content(ContentError::SeqGap {
                previous: 1,
                found: 3
            })
        ),
        "{err:?}"
    );
    let two = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let err = check(&with(1, two), &folder);
    assert!(
        matches!(
            &err,
            VerifyError::Summary {
                field: "readings.count",
                ..
            }
        ),
        "{err:?}"
    );
    let err = check(&with(2, String::new()), &folder);
    assert!(
        matches!(
            &err,
            VerifyError::Summary {
                field: "events.count",
                ..
            }
        ),
        "{err:?}"
    );
    let err = check(
        &with(0, text(0).replace("\"bundle_seq\": 1", "\"bundle_seq\": 2")),
        &folder,
    );
    assert!(
        matches!(&err, VerifyError::FolderName { expected, .. } if expected == "LAB1-ZEN-7-000002"),
        "{err:?}"
    );
    let err = check(
        &with(
            0,
            text(0).replace(
                "\"format\": \"tsagent-bundle-v3\",",
                "\"format\": \"tsagent-bundle-v3\", \"extra\": 1,",
            ),
        ),
        &folder,
    );
    assert!(matches!(err, VerifyError::Manifest(_)), "{err:?}");
    let err = check(&files, "LAB1-ZEN-7-000009");
    assert!(matches!(err, VerifyError::FolderName { .. }), "{err:?}");
    let err = check(&with(1, text(1).replace(",7,zener", ",07,zener")), &folder);
    assert!(matches!(err, VerifyError::Records(_)), "{err:?}");
    let err = check(
        &with(0, text(0).replace("\"name\": \"dmm\"", "\"name\": \"dvm\"")),
        &folder,
    );
    assert!(
        matches!(
            err,
            VerifyError::Content(ContentError::UnknownInstrument { seq: 1, .. })
        ),
        "{err:?}"
    );
}

#[test]
fn seal_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let err = |edit: &dyn Fn(&mut SealInput)| {
        let mut i = input();
        edit(&mut i);
        seal(&i, &key).unwrap_err()
    };
    assert!(matches!(
        err(&|i| i.lab_id = "LAB 1".into()),
        SealError::InvalidId { what: "lab", .. }
    ));
    assert!(matches!(
        err(&|i| i.artefact.id = String::new()),
        SealError::InvalidId {
            what: "artefact",
            ..
        }
    ));
    assert!(matches!(
        err(&|i| i.artefact.id = "a/b".into()),
        SealError::InvalidId {
            what: "artefact",
            ..
        }
    ));
    assert!(matches!(
        err(&|i| {
            i.lab_id = "L".repeat(64);
            i.artefact.id = "A".repeat(64)
        }),
        SealError::NameTooLong(_)
    ));
    assert!(matches!(
        err(&|i| i.bundle_seq = 0),
        SealError::ZeroBundleSeq
    ));
    assert!(matches!(
        err(&|i| i.bundle_seq = 2),
        SealError::PrevMismatch { bundle_seq: 2 }
    ));
    assert!(matches!(
        err(&|i| i.prev_sums_sha256 = Some([1; 32])),
        SealError::PrevMismatch { bundle_seq: 1 }
    ));
    assert!(matches!(
        err(&|i| i.artefact.nominal = f64::NAN),
        SealError::NonFiniteNominal
    ));
    assert!(matches!(
        err(&|i| i.created_utc_us = -1),
        SealError::CreatedTime(-1)
    ));
    assert!(matches!(
        err(&|i| i.readings.clear()),
        SealError::Content(ContentError::NoReadings)
    ));
    assert!(matches!(
        err(&|i| {
            i.readings.remove(1);
        }),
        SealError::Content(ContentError::SeqGap {
            previous: 1,
            found: 3
        })
    ));
    assert!(matches!(
        err(&|i| i.readings[1].chain = [0; 32]),
        SealError::Content(ContentError::ChainMismatch { seq: 2 })
    ));
    assert!(matches!(
        err(&|i| i.chain_prev = [1; 32]),
        SealError::Content(ContentError::ChainStart)
    ));
    assert!(matches!(
        err(&|i| i.readings[0].record.value = None),
        SealError::Content(ContentError::ValueStatus { seq: 1, .. })
    ));
    assert!(matches!(
        err(&|i| i.readings[0].record.value = Some(f64::INFINITY)),
        SealError::Content(ContentError::ValueStatus { seq: 1, .. })
    ));
    assert!(matches!(
        err(&|i| i.readings[2].record.value = Some(1.0)),
        SealError::Content(ContentError::ValueStatus { seq: 3, .. })
    ));
    assert!(matches!(
        err(&|i| i.readings[0].record.utc_us = -5),
        SealError::Content(ContentError::ReadingTime { seq: 1, .. })
    ));
    assert!(matches!(
        err(&|i| i.instruments.clear()),
        SealError::Content(ContentError::UnknownInstrument { seq: 1, id: 1, .. })
    ));
    assert!(matches!(
        err(&|i| i.instruments.push(instrument())),
        SealError::Content(ContentError::DuplicateInstrument { id: 1 })
    ));
    assert!(matches!(
        err(&|i| i.events.push(i.events[0].clone())),
        SealError::Content(ContentError::EventOrder {
            previous: 11,
            found: 11
        })
    ));
    assert!(matches!(
        err(&|i| i.events[0].utc_us = i64::MAX),
        SealError::Content(ContentError::EventTime { id: 11, .. })
    ));
}

#[test]
fn atomic_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file_atomically(dir.path(), "b.tar", b"one").unwrap();
    assert_eq!(path, dir.path().join("b.tar"));
    assert_eq!(std::fs::read(&path).unwrap(), b"one");
    // A temp file left by a crash is replaced, and an existing file is replaced whole.
    std::fs::write(dir.path().join(".b.tar.tmp"), b"stale").unwrap();
    write_file_atomically(dir.path(), "b.tar", b"two").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("b.tar")]);
    for bad in ["", ".", "..", "a/b"] {
        let err = write_file_atomically(dir.path(), bad, b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
    assert!(write_file_atomically(&dir.path().join("missing"), "b.tar", b"x").is_err());
}

#[test]
fn verify_time_is_now_by_default() {
    // `verify` uses the current time: a key valid only in the past is refused.
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let sealed = seal(&input(), &key).unwrap();
    let line = allowed_signers_line(LAB, key.public_key()).unwrap();
    let past = AllowedSigners::parse(
        &line.replace("namespaces=", "valid-before=\"20000101Z\",namespaces="),
    )
    .unwrap();
    assert!(matches!(
        verify(&sealed.tar, &past, Some(LAB)),
        Err(VerifyError::UnknownPrincipal { .. })
    ));
    assert!(matches!(
        verify(&sealed.tar, &past, None),
        Err(VerifyError::UnknownKey { .. })
    ));
    assert!(SystemTime::now() > UNIX_EPOCH + Duration::from_secs(946_684_800));
}

/// A reader of `data` whose bytes at `flip` change once it is first sought back to: a file written
/// to while it is verified.
struct ChangesOnSeek {
    data: Cursor<Vec<u8>>,
    flip: usize,
    flipped: bool,
}

impl Read for ChangesOnSeek {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl Seek for ChangesOnSeek {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if !self.flipped && to != SeekFrom::Current(0) {
            self.flipped = true;
            self.data.get_mut()[self.flip] ^= 1;
        }
        self.data.seek(to)
    }
}

#[test]
fn what_is_parsed_is_what_was_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let signers = signers_for(&[(LAB, &key)]);
    let sealed = seal(&input(), &key).unwrap();
    let b = read_tar(&sealed.tar, TarLimits::DEFAULT).unwrap();
    let base = sealed.tar.as_ptr() as usize;
    for (file, data) in [
        ("readings.csv", b.files.readings),
        ("events.jsonl", b.files.events),
    ] {
        // A byte that parses either way (a digit of the chain), and one that does not.
        for within in [data.len() - 3, 0] {
            let flip = data.as_ptr() as usize - base + within;
            let reader = ChangesOnSeek {
                data: Cursor::new(sealed.tar.clone()),
                flip,
                flipped: false,
            };
            let err = verify_reader(reader, &signers, Some(LAB), SystemTime::now()).unwrap_err();
            assert!(
                matches!(err, VerifyError::HashMismatch { file: f } if f == file),
                "{file} at {within}: {err:?}"
            );
        }
    }
}

#[test]
fn the_signature_is_checked_before_anything_it_vouches_for_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let stranger = key_in(dir.path(), "stranger");
    let signers = signers_for(&[(LAB, &key)]);
    let sealed = seal(&input(), &key).unwrap();
    let (folder, files) = files_of(&sealed.tar);
    // A manifest that is not even JSON, and no lab asked for: the signature is checked first, then
    // the hashes, which find the change; the manifest is never read for a principal.
    let mut garbled = files.clone();
    garbled[0] = b"not json\n".to_vec();
    let err = verify(&pack(&folder, &garbled), &signers, None).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::HashMismatch {
                file: "manifest.json"
            }
        ),
        "{err:?}"
    );
    // Unparseable content signed by a key nobody listed: refused for the key, unparsed.
    let mut junk = files.clone();
    junk[0] = b"not json\n".to_vec();
    junk[1] = b"not,a,reading\n".to_vec();
    junk[2] = b"{\n".to_vec();
    let forged = resign(&folder, junk, &stranger, NAMESPACE);
    let err = verify(&forged, &signers, None).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err:?}");
    let err = verify(&forged, &signers, Some(LAB)).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotAllowed { .. }), "{err:?}");
}

#[test]
fn a_file_over_its_cap_is_refused_before_it_is_read() {
    // A signature of 1 MiB: well under what readings.csv may be, far over what a signature is.
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "k");
    let signers = signers_for(&[(LAB, &key)]);
    let sealed = seal(&input(), &key).unwrap();
    let (folder, mut files) = files_of(&sealed.tar);
    files[5] = vec![b'A'; 1 << 20];
    let err = verify(&pack(&folder, &files), &signers, Some(LAB)).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::Tar(TarError::FileTooLarge { cap, .. }) if *cap == tar::MEMBER_CAPS[5]
        ),
        "{err:?}"
    );
}

#[test]
fn a_bundle_of_format_v1_still_verifies() {
    // Sealed by the agent before custody.jsonl existed (format v1: five files, three sums lines),
    // kept as bytes so the old layout stays accepted.
    let tar = include_bytes!("../tests/data/v1-bundle.tar");
    let signers = AllowedSigners::parse(include_str!("../tests/data/v1-allowed_signers")).unwrap();
    let verified = verify(tar, &signers, Some(LAB)).unwrap();
    assert_eq!(verified.manifest.format, manifest::FORMAT_V1);
    assert_eq!(verified.manifest.custody, None);
    assert_eq!(verified.readings, 3);
    assert!(
        read_tar(tar, TarLimits::DEFAULT)
            .unwrap()
            .files
            .custody
            .is_none()
    );
}

fn custody_event(id: u64, kind: &str) -> EventExport {
    EventExport {
        id,
        utc_us: 1_700_000_000_000_000 + id as i64,
        run_id: None,
        instrument: None,
        kind: kind.into(),
        detail: serde_json::json!({"operator": "li", "text": "moved"}),
    }
}

#[test]
fn custody_jsonl_is_the_custody_lines_of_events_jsonl_and_is_checked_so() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab_key");
    let signers = signers_for(&[(LAB, &key)]);
    let mut input = input();
    input.events = vec![
        custody_event(3, "custody_note"),
        custody_event(5, "run_started"),
        custody_event(8, "custody_note"),
    ];
    let sealed = seal(&input, &key).unwrap();
    assert_eq!(sealed.manifest.format, manifest::FORMAT);
    assert_eq!(sealed.manifest.custody.as_ref().unwrap().count, 2);
    assert_eq!(sealed.manifest.traceability.as_ref().unwrap().len(), 1);
    let (folder, files) = files_of(&sealed.tar);
    let events = String::from_utf8(files[2].clone()).unwrap();
    let custody = String::from_utf8(files[3].clone()).unwrap();
    let expected: String = events
        .lines()
        .filter(|l| l.contains("custody_note"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(custody, expected);
    let sums = String::from_utf8(files[4].clone()).unwrap();
    assert!(sums.starts_with(&format!(
        "{}  custody.jsonl\n",
        hex::encode(Sha256::digest(&files[3]).as_slice())
    )));
    verify(&sealed.tar, &signers, Some(LAB)).unwrap();

    // A custody line dropped (and the bundle signed again) no longer matches the events.
    let mut edited = files.clone();
    edited[3] = expected.lines().next().unwrap().as_bytes().to_vec();
    edited[3].push(b'\n');
    let err = verify(
        &resign(&folder, edited, &key, NAMESPACE),
        &signers,
        Some(LAB),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::Custody { .. }), "{err:?}");
    // A line of another kind is refused by kind.
    let mut edited = files.clone();
    edited[3] = events.lines().nth(1).unwrap().as_bytes().to_vec();
    edited[3].push(b'\n');
    let err = verify(
        &resign(&folder, edited, &key, NAMESPACE),
        &signers,
        Some(LAB),
    )
    .unwrap_err();
    assert!(
        matches!(&err, VerifyError::Custody { problem } if problem.contains("run_started")),
        "{err:?}"
    );
    // A v2 bundle without custody.jsonl is refused for its format.
    let files_v1 = BundleFiles {
        manifest: &files[0],
        readings: &files[1],
        events: &files[2],
        custody: None,
        sums: &files[4],
        sig: &files[5],
    };
    let err = verify(
        &write_tar(&folder, &files_v1, 0).unwrap(),
        &signers,
        Some(LAB),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::FormatFiles { .. }), "{err:?}");
}

#[test]
fn links_between_bundles_tell_next_gap_and_each_kind_of_fork() {
    use crate::links::{Head, LinkError, check_link};
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab_key");
    let signers = signers_for(&[(LAB, &key)]);
    let first = verify(&seal(&input(), &key).unwrap().tar, &signers, Some(LAB)).unwrap();
    assert_eq!(check_link(None, &first.manifest), Ok(()));
    let head = Head::of(&first);

    let follow = |seq: u64, prev: Option<[u8; 32]>, chain_prev: [u8; 32], first_seq: u64| {
        let mut next = input();
        next.bundle_seq = seq;
        next.prev_sums_sha256 = prev;
        next.chain_prev = chain_prev;
        next.readings = readings(first_seq, 2, chain_prev);
        next.events.clear();
        let tar = seal(&next, &key).unwrap().tar;
        // The chain value after reading 5, as the coordinator asks when a heartbeat named it.
        let asked = verify_reader_marked(
            Cursor::new(&tar),
            &signers,
            Some(LAB),
            SystemTime::now(),
            Marks::Seqs(&[5]),
        )
        .unwrap();
        // Every reading's, as it asks of a small bundle: the same value for reading 5.
        let all = verify_reader_marked(
            Cursor::new(&tar),
            &signers,
            Some(LAB),
            SystemTime::now(),
            Marks::All,
        )
        .unwrap();
        let seqs: Vec<u64> = all.marks.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (first_seq..first_seq + 2).collect::<Vec<_>>());
        assert_eq!(
            all.marks.last().map(|m| m.1),
            Some(all.manifest.readings.chain_last)
        );
        for mark in &asked.marks {
            assert!(all.marks.contains(mark));
        }
        asked
    };
    let chain = head.chain_last.0;
    let next = follow(2, Some(first.sums_sha256), chain, 4);
    assert_eq!(check_link(Some(&head), &next.manifest), Ok(()));
    assert_eq!(next.marks.len(), 1);
    assert_eq!(next.marks[0].0, 5);
    assert_eq!(
        Head::of(&next).chain_last,
        next.manifest.readings.chain_last
    );

    let gap = follow(3, Some(first.sums_sha256), chain, 4);
    assert_eq!(
        check_link(Some(&head), &gap.manifest),
        Err(LinkError::Gap {
            expected: 2,
            found: 3
        })
    );
    assert!(
        !LinkError::Gap {
            expected: 2,
            found: 3
        }
        .is_fork()
    );
    let wrong_prev = follow(2, Some([1; 32]), chain, 4);
    let e = check_link(Some(&head), &wrong_prev.manifest).unwrap_err();
    assert!(
        matches!(e, LinkError::PreviousHash { .. }) && e.is_fork(),
        "{e}"
    );
    let rewritten = follow(2, Some(first.sums_sha256), [2; 32], 4);
    let e = check_link(Some(&head), &rewritten.manifest).unwrap_err();
    assert!(matches!(e, LinkError::Chain { .. }), "{e}");
    let skipped = follow(2, Some(first.sums_sha256), chain, 6);
    assert!(matches!(
        check_link(Some(&head), &skipped.manifest),
        Err(LinkError::Chain { .. })
    ));
    assert!(matches!(
        check_link(Some(&Head::of(&next)), &next.manifest),
        Err(LinkError::Taken { head: 2, found: 2 })
    ));
    assert_eq!(
        check_link(None, &next.manifest),
        Err(LinkError::Gap {
            expected: 1,
            found: 2
        })
    );
}

#[test]
fn a_bundle_of_format_v2_still_verifies_and_may_not_carry_a_receipt() {
    // Sealed by `tsagent demo` before receipts were carried (format v2), kept as bytes.
    let tar = include_bytes!("../tests/data/v2-bundle.tar");
    let signers = AllowedSigners::parse(include_str!("../tests/data/v2-allowed_signers")).unwrap();
    let verified = verify(tar, &signers, Some("DEMO-LAB")).unwrap();
    assert_eq!(verified.manifest.format, manifest::FORMAT_V2);
    assert_eq!(verified.manifest.previous_receipt, None);
    assert!(verified.manifest.custody.is_some());

    // A v3 bundle carries the receipt; relabelled v2 (and re-signed) it is refused.
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "lab_key");
    let sealed = seal(&input(), &key).unwrap();
    let signers = signers_for(&[(LAB, &key)]);
    let v3 = verify(&sealed.tar, &signers, Some(LAB)).unwrap();
    assert_eq!(
        v3.manifest.previous_receipt.as_ref().map(|r| r.log_index),
        Some(41)
    );
    let (folder, mut files) = files_of(&sealed.tar);
    files[0] = String::from_utf8(files[0].clone())
        .unwrap()
        .replace("tsagent-bundle-v3", "tsagent-bundle-v2")
        .into_bytes();
    let relabelled = resign(&folder, files, &key, NAMESPACE);
    let err = verify(&relabelled, &signers, Some(LAB)).unwrap_err();
    assert!(err.to_string().contains("previous_receipt"), "{err}");
}

/// Attachments (format v4): the lab's report carried in `report/`, signed with the readings.
mod attachments {
    use super::*;
    use crate::tar::{
        MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MEMBER_CAPS, read_tar_stream, write_tar_with,
    };
    use crate::verify::AttachmentProblem;

    const REPORT: [(&str, &[u8]); 3] = [
        ("readings.csv", b"seq,value\n1,10.0\n"),
        ("report.html", b"<!doctype html><title>result</title>\n"),
        ("summary.json", b"{\"mean\": 10.0}\n"),
    ];

    fn sealed_with(key: &PrivateKey, attachments: &[(&str, &[u8])]) -> SealedBundle {
        seal_with_attachments(&input(), attachments, key).unwrap()
    }

    /// The bundle's files and attachments, owned, for editing.
    type Parts = (String, [Vec<u8>; 6], Vec<(String, Vec<u8>)>);

    fn parts_of(tar: &[u8]) -> Parts {
        let (folder, files) = files_of(tar);
        let b = read_tar(tar, TarLimits::DEFAULT).unwrap();
        let attached = b
            .attachments
            .into_iter()
            .map(|(n, d)| (n, d.to_vec()))
            .collect();
        (folder, files, attached)
    }

    fn pack_with((folder, files, attached): &Parts) -> Vec<u8> {
        let [manifest, readings, events, custody, sums, sig] = files;
        let bundle = BundleFiles {
            manifest,
            readings,
            events,
            custody: Some(custody),
            sums,
            sig,
        };
        let list: Vec<(&str, &[u8])> = attached
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        write_tar_with(folder, &bundle, &list, 0).unwrap()
    }

    /// Fresh sums over the files and `listed` (name, bytes), signed by `key`.
    fn resign_with(parts: &mut Parts, listed: &[(&str, &[u8])], key: &PrivateKey) {
        let hash = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let files = &mut parts.1;
        let text = sums::render(&sums::Sums {
            custody: Some(hash(&files[3])),
            events: hash(&files[2]),
            manifest: hash(&files[0]),
            readings: hash(&files[1]),
            attachments: listed
                .iter()
                .map(|(n, d)| ((*n).to_owned(), hash(d)))
                .collect(),
        });
        let sig = key
            .sign(NAMESPACE, HashAlg::Sha512, text.as_bytes())
            .unwrap();
        files[4] = text.into_bytes();
        files[5] = sig.to_pem(LineEnding::LF).unwrap().into_bytes();
    }

    fn refused(tar: &[u8], signers: &AllowedSigners) -> VerifyError {
        verify(tar, signers, Some(LAB)).unwrap_err()
    }

    fn attachment_error(e: &VerifyError) -> Option<(&str, AttachmentProblem)> {
        match e {
            VerifyError::Attachment { file, problem } => Some((file, *problem)),
            _ => None,
        }
    }

    #[test]
    fn a_bundle_carries_the_report_signed_and_listed_three_times() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let signers = signers_for(&[(LAB, &key)]);
        let sealed = sealed_with(&key, &REPORT);
        assert_eq!(sealed.manifest.format, manifest::FORMAT_V4);
        let verified = verify(&sealed.tar, &signers, Some(LAB)).unwrap();
        let listed = verified.manifest.attachments.clone().unwrap();
        assert_eq!(
            listed.iter().map(|a| a.file.as_str()).collect::<Vec<_>>(),
            [
                "report/readings.csv",
                "report/report.html",
                "report/summary.json"
            ]
        );
        for (entry, (_, bytes)) in listed.iter().zip(REPORT) {
            assert_eq!(entry.size, bytes.len() as u64);
            assert_eq!(entry.sha256.0, <[u8; 32]>::from(Sha256::digest(bytes)));
        }
        // Given in any order, sealed sorted: the same bytes.
        let mut reversed = REPORT;
        reversed.reverse();
        assert_eq!(sealed_with(&key, &reversed).tar, sealed.tar);
        let b = read_tar(&sealed.tar, TarLimits::DEFAULT).unwrap();
        assert_eq!(
            b.attachments,
            REPORT
                .iter()
                .map(|(n, d)| ((*n).to_owned(), *d))
                .collect::<Vec<_>>()
        );
        // The report's readings.csv is its own; the bundle's is untouched.
        assert_ne!(b.files.readings, REPORT[0].1);
        let sums = std::str::from_utf8(b.files.sums).unwrap();
        assert_eq!(sums.lines().count(), 7);
        assert!(sums.ends_with("  report/summary.json\n"), "{sums}");
    }

    #[test]
    fn without_attachments_the_bundle_is_format_v3_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let sealed = seal(&input(), &key).unwrap();
        assert_eq!(sealed, sealed_with(&key, &[]));
        assert_eq!(sealed.manifest.format, manifest::FORMAT);
        let (folder, files) = files_of(&sealed.tar);
        // Byte for byte the v3 layout: the six files packed by the writer without attachments,
        // and no `attachments` key in the manifest.
        let [manifest, readings, events, custody, sums, sig] = &files;
        let bundle = BundleFiles {
            manifest,
            readings,
            events,
            custody: Some(custody),
            sums,
            sig,
        };
        let mtime = (sealed.manifest.created_utc_us / 1_000_000) as u64;
        assert!(write_tar(&folder, &bundle, mtime).unwrap() == sealed.tar);
        let value: serde_json::Value = serde_json::from_slice(&files[0]).unwrap();
        assert!(value.get("attachments").is_none());
        assert_eq!(std::str::from_utf8(&files[4]).unwrap().lines().count(), 4);
    }

    #[test]
    fn a_changed_attachment_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let signers = signers_for(&[(LAB, &key)]);
        let mut parts = parts_of(&sealed_with(&key, &REPORT).tar);
        parts.2[1].1[3] ^= 1;
        let e = refused(&pack_with(&parts), &signers);
        assert_eq!(
            attachment_error(&e),
            Some(("report/report.html", AttachmentProblem::HashMismatch)),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "attachment report/report.html does not match its SHA256SUMS entry"
        );
    }

    #[test]
    fn a_missing_or_an_unlisted_attachment_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let signers = signers_for(&[(LAB, &key)]);
        let sealed = sealed_with(&key, &REPORT);
        let mut missing = parts_of(&sealed.tar);
        missing.2.remove(2);
        assert_eq!(
            attachment_error(&refused(&pack_with(&missing), &signers)),
            Some(("report/summary.json", AttachmentProblem::NotInArchive))
        );
        let mut extra = parts_of(&sealed.tar);
        extra.2.insert(0, ("plot.svg".into(), b"<svg/>".to_vec()));
        assert_eq!(
            attachment_error(&refused(&pack_with(&extra), &signers)),
            Some(("report/plot.svg", AttachmentProblem::NotInSums))
        );
        // A v3 bundle given a report member is refused too: its format has none.
        let mut smuggled = parts_of(&seal(&input(), &key).unwrap().tar);
        smuggled.2.push(("report.html".into(), b"x".to_vec()));
        assert_eq!(
            attachment_error(&refused(&pack_with(&smuggled), &signers)),
            Some(("report/report.html", AttachmentProblem::NotInSums))
        );
        let listed: Vec<(&str, &[u8])> = vec![("report.html", b"x")];
        resign_with(&mut smuggled, &listed, &key);
        assert!(matches!(
            refused(&pack_with(&smuggled), &signers),
            VerifyError::FormatFiles {
                problem: "has no attachments",
                ..
            }
        ));
    }

    #[test]
    fn the_sums_and_the_manifest_must_list_the_same_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let signers = signers_for(&[(LAB, &key)]);
        let sealed = sealed_with(&key, &REPORT[..2]);
        // Signed sums and the archive both have summary.json; the manifest does not.
        let mut parts = parts_of(&sealed.tar);
        parts.2.push(("summary.json".into(), REPORT[2].1.to_vec()));
        resign_with(&mut parts, &REPORT, &key);
        assert_eq!(
            attachment_error(&refused(&pack_with(&parts), &signers)),
            Some(("report/summary.json", AttachmentProblem::NotInManifest))
        );
        // The manifest lists one that neither the sums nor the archive have.
        let mut manifest = sealed.manifest.clone();
        let mut entries = manifest.attachments.take().unwrap();
        entries.push(Attachment {
            file: "report/zzz.svg".into(),
            sha256: manifest::Hash32([1; 32]),
            size: 1,
        });
        manifest.attachments = Some(entries.clone());
        let mut parts = parts_of(&sealed.tar);
        parts.1[0] = serde_json::to_vec_pretty(&manifest).unwrap();
        resign_with(&mut parts, &REPORT[..2], &key);
        assert_eq!(
            attachment_error(&refused(&pack_with(&parts), &signers)),
            Some(("report/zzz.svg", AttachmentProblem::OnlyInManifest))
        );
        // The manifest's size for one is wrong.
        entries.pop();
        entries[0].size += 1;
        manifest.attachments = Some(entries);
        parts.1[0] = serde_json::to_vec_pretty(&manifest).unwrap();
        resign_with(&mut parts, &REPORT[..2], &key);
        assert_eq!(
            attachment_error(&refused(&pack_with(&parts), &signers)),
            Some(("report/readings.csv", AttachmentProblem::ManifestMismatch))
        );
        // A v4 manifest whose bundle carries no attachment at all.
        manifest.attachments = None;
        let mut bare = parts_of(&sealed.tar);
        bare.2.clear();
        bare.1[0] = serde_json::to_vec_pretty(&manifest).unwrap();
        resign_with(&mut bare, &[], &key);
        assert!(matches!(
            refused(&pack_with(&bare), &signers),
            VerifyError::FormatFiles { .. }
        ));
    }

    #[test]
    fn caps_on_attachments_hold_at_sealing_and_before_any_byte_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let big = vec![b'x'; MAX_ATTACHMENT_BYTES as usize + 1];
        assert!(matches!(
            seal_with_attachments(&input(), &[("big.svg", &big)], &key),
            Err(SealError::AttachmentTooLarge { size, .. }) if size == MAX_ATTACHMENT_BYTES + 1
        ));
        let names: Vec<String> = (0..=MAX_ATTACHMENTS)
            .map(|i| format!("p{i:03}.svg"))
            .collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"<svg/>"[..])).collect();
        assert!(matches!(
            seal_with_attachments(&input(), &many, &key),
            Err(SealError::TooManyAttachments {
                cap: MAX_ATTACHMENTS
            })
        ));
        // The most a bundle may carry verifies, with SHA256SUMS under its cap.
        let longest: Vec<String> = (0..MAX_ATTACHMENTS)
            .map(|i| format!("{i:03}{}", "x".repeat(tar::MAX_ATTACHMENT_NAME - 3)))
            .collect();
        let full: Vec<(&str, &[u8])> = longest.iter().map(|n| (n.as_str(), &b"a"[..])).collect();
        let sealed = seal_with_attachments(&input(), &full, &key).unwrap();
        let parts = parts_of(&sealed.tar);
        assert!(parts.1[4].len() as u64 <= MEMBER_CAPS[4]);
        verify(&sealed.tar, &signers_for(&[(LAB, &key)]), Some(LAB)).unwrap();
        for bad in ["..", "../x", ".hidden", "-rf", "a/b", ""] {
            assert!(
                matches!(
                    seal_with_attachments(&input(), &[(bad, b"x")], &key),
                    Err(SealError::AttachmentName(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            seal_with_attachments(&input(), &[("a", b"x"), ("a", b"y")], &key),
            Err(SealError::DuplicateAttachment(_))
        ));

        // A header claiming more than the cap is refused before its data is read.
        let folder = raw_header(b"B/", b"", b'5', 0);
        let dir_header = raw_header(b"B/report/", b"", b'5', 0);
        let claim = raw_header(b"B/report/x.svg", b"", b'0', MAX_ATTACHMENT_BYTES + 1);
        let tar = [
            &folder[..],
            &dir_header[..],
            &claim[..],
            &[0u8; 2 * 512][..],
        ]
        .concat();
        let mut visited = 0;
        let result = read_tar_stream(&tar[..], TarLimits::DEFAULT, |_, _| {
            visited += 1;
            Ok::<(), VerifyError>(())
        });
        let Err(VerifyError::Tar(e)) = result else {
            panic!("not a tar error")
        };
        assert_eq!(
            e,
            TarError::FileTooLarge {
                path: "B/report/x.svg".into(),
                size: MAX_ATTACHMENT_BYTES + 1,
                cap: MAX_ATTACHMENT_BYTES
            }
        );
        assert_eq!(visited, 0);
        // And one attachment past the count is refused at its header.
        let mut tar = [&folder[..], &dir_header[..]].concat();
        for i in 0..=MAX_ATTACHMENTS {
            tar.extend_from_slice(&raw_header(
                format!("B/report/f{i:03}").as_bytes(),
                b"",
                b'0',
                0,
            ));
        }
        tar.extend_from_slice(&[0u8; 2 * 512]);
        assert!(matches!(
            read_tar(&tar, TarLimits::DEFAULT),
            Err(TarError::TooManyAttachments {
                cap: MAX_ATTACHMENTS,
                ..
            })
        ));
        // Names outside the rules, nested folders and `..` never reach a visitor.
        for path in [
            "B/report/.x",
            "B/report/a/b",
            "B/report/../x",
            "B/reports/x",
            "B/report",
        ] {
            let entry = raw_header(path.as_bytes(), b"", b'0', 0);
            let tar = [&folder[..], &dir_header[..], &entry[..], &[0u8; 1024][..]].concat();
            assert!(
                matches!(
                    read_tar(&tar, TarLimits::DEFAULT),
                    Err(TarError::UnexpectedPath { .. } | TarError::ParentComponent { .. })
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn attachments_out_of_order_or_without_their_folder_are_not_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let tar = sealed_with(&key, &REPORT).tar;
        // Swap the first two attachments' members (headers and data) in the archive.
        let spans: Vec<(usize, usize)> = {
            let layout = read_tar_stream(&tar[..], TarLimits::DEFAULT, |_, _| {
                Ok::<(), VerifyError>(())
            })
            .unwrap();
            layout
                .attachments
                .iter()
                .map(|(_, s)| {
                    (
                        s.offset as usize - 512,
                        (s.offset + s.len).div_ceil(512) as usize * 512,
                    )
                })
                .collect()
        };
        let (a, b) = (spans[0], spans[1]);
        let swapped = [&tar[..a.0], &tar[b.0..b.1], &tar[a.0..a.1], &tar[b.1..]].concat();
        assert_eq!(
            read_tar(&swapped, TarLimits::DEFAULT),
            Err(TarError::NotCanonical)
        );
        // Without the `report/` folder entry.
        let dir_start = a.0 - 512;
        let no_dir = [&tar[..dir_start], &tar[a.0..]].concat();
        assert_eq!(
            read_tar(&no_dir, TarLimits::DEFAULT),
            Err(TarError::NotCanonical)
        );
        // A `report/` folder with nothing in it.
        let last = spans[spans.len() - 1];
        let empty = [&tar[..a.0], &tar[last.1..]].concat();
        assert_eq!(
            read_tar(&empty, TarLimits::DEFAULT),
            Err(TarError::NotCanonical)
        );
    }

    #[test]
    fn stock_tools_verify_a_bundle_with_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path(), "lab_key");
        let sealed = sealed_with(&key, &REPORT);
        let out = tempfile::tempdir().unwrap();
        let path = write_file_atomically(out.path(), &sealed.file_name, &sealed.tar).unwrap();
        let run = |cmd: &mut Command, at: &Path| {
            cmd.current_dir(at)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        assert!(run(Command::new("tar").arg("-xf").arg(&path), out.path()));
        let folder = out.path().join(&sealed.name);
        for (name, bytes) in REPORT {
            assert_eq!(
                std::fs::read(folder.join("report").join(name)).unwrap(),
                bytes
            );
        }
        let line = allowed_signers_line(LAB, key.public_key()).unwrap();
        std::fs::write(folder.join("allowed_signers"), format!("{line}\n")).unwrap();
        let sums = std::fs::File::open(folder.join("SHA256SUMS")).unwrap();
        let verified = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-f",
                "allowed_signers",
                "-I",
                LAB,
                "-n",
                NAMESPACE,
            ])
            .args(["-s", "SHA256SUMS.sig"])
            .current_dir(&folder)
            .stdin(sums)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(verified);
        let sha_check = || {
            run(
                Command::new("sha256sum").args(["-c", "--strict", "SHA256SUMS"]),
                &folder,
            )
        };
        assert!(sha_check());
        // The lines are in the order `sort` gives.
        let text = std::fs::read_to_string(folder.join("SHA256SUMS")).unwrap();
        let sorted = Command::new("sort")
            .args(["-k", "2"])
            .env("LC_ALL", "C")
            .stdin(std::fs::File::open(folder.join("SHA256SUMS")).unwrap())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(sorted.stdout).unwrap(), text);
        // And a changed attachment fails the stock check.
        std::fs::write(folder.join("report/summary.json"), b"{}\n").unwrap();
        assert!(!sha_check());
    }
}
