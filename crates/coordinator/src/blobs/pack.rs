//! Packs: small blobs appended to one file per process, made durable together.
//!
//! A blob kept as a file of its own costs two syncs (the file, then its folder) and a rename; for
//! a bundle of 30 kB those syncs are most of an accept (P7 in BENCHMARKS.md). A pack takes the
//! blobs of every request that is storing one at the same time in one `fdatasync` (group sync,
//! as the index's group commit does for the WAL), and its folder is synced once per pack, not
//! once per blob. restic packs its small blobs for the same reason.
//!
//! A pack is `packs/<process tag>-<n>.pack`, a sequence of records, each a 44-byte header —
//! [`MAGIC`], the blob's SHA-256, its length (u64, little-endian) — then the blob's bytes. Only
//! the process that made a pack appends to it, never after a failed write (the pack is cut back
//! to its last whole record, or given up). A record is acknowledged only after a sync that covers
//! it, so whatever a crash can leave half-written (a torn header, a body of zeros) lies after
//! every acknowledged record of its pack. Records are found by reading the headers; a blob is
//! read back only if its bytes hash to its name, so such leftovers are never served.
//!
//! Each process keeps in memory where every packed blob it has seen is (a hash table of 55 to 85
//! bytes a blob, as it fills: 5.5 to 8.5 MB for 100,000 bundles), read from the headers when it starts and kept up as
//! it appends; a blob it does not know (one another process sharing the folder packed since) is
//! looked for in what the packs gained since it last read them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use tsagent_bundle::manifest::Hash32;

use super::{BlobError, create_new, io_err, sync_dir};

/// The first bytes of every record.
pub const MAGIC: [u8; 4] = *b"TSB1";
/// A record's header: magic, SHA-256, length.
pub const HEADER: usize = 4 + 32 + 8;
/// Blobs up to this size go into packs; larger ones are files of their own.
pub const MAX_BLOB: u64 = 256 << 10;
/// A pack that reached this size is closed and the next blob starts a new one: packs of a size
/// that copies and backups handle well.
const PACK_BYTES: u64 = 64 << 20;

/// Where a blob is: a pack (by its number in [`Found::packs`]), and its bytes' offset and length.
#[derive(Clone, Copy, Debug)]
struct Loc {
    pack: u32,
    offset: u64,
    len: u32,
}

/// The packs of a folder: the one this process appends to, and where every blob found in any
/// pack is.
pub struct Packs {
    dir: PathBuf,
    tag: String,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    found: Mutex<Found>,
    /// The next sync fails: how the tests reach what a failing disk does.
    #[cfg(test)]
    fail_sync: std::sync::atomic::AtomicBool,
}

/// The pack being appended to.
#[derive(Default)]
struct Writer {
    /// The open pack and its number in [`Found::packs`]; none before the first blob, or after a
    /// pack was closed.
    file: Option<(Arc<File>, u32)>,
    /// Where the next record goes.
    end: u64,
    /// Packs this process has made.
    made: u32,
    /// Records appended, ever: a record's number is what a sync must reach for it to be durable.
    appended: u64,
}

/// The group sync's state.
#[derive(Default)]
struct SyncState {
    /// Every record up to this number is on disk.
    durable: u64,
    /// Whether a request is syncing now.
    syncing: bool,
    /// Records a failed sync covered, as (after, up to): never acknowledged.
    lost: Vec<(u64, u64)>,
}

/// What the headers read so far say.
#[derive(Default)]
struct Found {
    /// Every pack seen, by number.
    packs: Vec<PathBuf>,
    /// How far each pack's headers were read: where its next record would start.
    read_to: Vec<u64>,
    numbers: HashMap<PathBuf, u32>,
    /// The first whole record of each blob.
    blobs: HashMap<[u8; 32], Loc>,
    /// This process's packs whose sync failed: a copy in one is never taken for a kept blob,
    /// since a later sync of it may report success whatever reached the disk.
    failed: Vec<u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state whole between two steps.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Packs {
    /// Opens (creating) `dir` for a process whose files are tagged `tag`, and reads every pack's
    /// headers.
    pub fn open(dir: &Path, tag: &str) -> Result<Self, BlobError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let packs = Self {
            dir: dir.to_owned(),
            tag: tag.to_owned(),
            writer: Mutex::default(),
            sync: Mutex::default(),
            synced: Condvar::new(),
            found: Mutex::default(),
            #[cfg(test)]
            fail_sync: std::sync::atomic::AtomicBool::new(false),
        };
        packs.read_new()?;
        Ok(packs)
    }

    /// Appends `bytes` (whose SHA-256 is `sha256`) and returns once it is on disk, synced
    /// together with whatever other requests appended meanwhile.
    pub fn keep(&self, sha256: &Hash32, bytes: &[u8]) -> Result<(), BlobError> {
        match self.keep_later(sha256, bytes)? {
            Some(number) => self.sync_to(number),
            None => Ok(()),
        }
    }

    /// Appends `bytes` (whose SHA-256 is `sha256`) without waiting for a sync: the record's
    /// number, which [`Packs::sync_to`] must reach before it is relied on; `None` when a copy
    /// kept before serves, synced.
    pub fn keep_later(&self, sha256: &Hash32, bytes: &[u8]) -> Result<Option<u64>, BlobError> {
        // Kept before (a re-send after a failure between keeping and indexing, say): that copy
        // serves, once it is read back whole and its pack synced — it may be another process's,
        // or one a crash left unsynced. Appending again would grow the pack at every retry.
        let known = {
            let found = lock(&self.found);
            found
                .blobs
                .get(&sha256.0)
                .copied()
                .filter(|loc| !found.failed.contains(&loc.pack))
        };
        if let Some(loc) = known
            && self.read_at(loc, sha256)?.is_some()
        {
            let path = self.path(loc.pack);
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(io_err("sync", &path))?;
            return Ok(None);
        }
        let (number, loc) = self.append(sha256, bytes)?;
        // The newest copy: the one to serve once synced (reading it back checks its hash).
        lock(&self.found).blobs.insert(sha256.0, loc);
        Ok(Some(number))
    }

    fn append(&self, sha256: &Hash32, bytes: &[u8]) -> Result<(u64, Loc), BlobError> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&n| u64::from(n) <= MAX_BLOB)
            .ok_or_else(|| BlobError::Io {
                action: "pack",
                path: self.dir.clone(),
                source: std::io::Error::other("a blob too large for a pack"),
            })?;
        let mut record = Vec::with_capacity(HEADER + bytes.len());
        record.extend_from_slice(&MAGIC);
        record.extend_from_slice(&sha256.0);
        record.extend_from_slice(&u64::from(len).to_le_bytes());
        record.extend_from_slice(bytes);
        let mut w = lock(&self.writer);
        if w.file.is_some() && w.end + record.len() as u64 > PACK_BYTES {
            self.close(&mut w)?;
        }
        let (file, pack) = match &w.file {
            Some((file, pack)) => (file.clone(), *pack),
            None => self.start(&mut w)?,
        };
        if let Err(e) = file.write_all_at(&record, w.end) {
            // The next record goes where this one started, over whatever of it was written, so
            // the records stay one after another; cutting the file back only tidies its tail.
            let _ = file.set_len(w.end);
            return Err(io_err("append to", &self.path(pack))(e));
        }
        let offset = w.end + HEADER as u64;
        w.end += record.len() as u64;
        w.appended += 1;
        Ok((w.appended, Loc { pack, offset, len }))
    }

    fn path(&self, pack: u32) -> PathBuf {
        lock(&self.found).packs[pack as usize].clone()
    }

    /// Makes a new pack, durable as an entry of its folder before any record in it is.
    fn start(&self, w: &mut Writer) -> Result<(Arc<File>, u32), BlobError> {
        let path = self.dir.join(format!("{}-{}.pack", self.tag, w.made));
        let file = create_new(&path)?;
        sync_dir(&self.dir)?;
        w.made += 1;
        let file = Arc::new(file);
        let pack = {
            let mut found = lock(&self.found);
            let pack = found.packs.len() as u32;
            found.numbers.insert(path.clone(), pack);
            found.packs.push(path);
            found.read_to.push(0);
            pack
        };
        w.file = Some((file.clone(), pack));
        w.end = 0;
        Ok((file, pack))
    }

    /// Closes the pack being appended to: every record in it is synced first, so that the
    /// group sync need only ever sync the open pack.
    fn close(&self, w: &mut Writer) -> Result<(), BlobError> {
        if let Some((file, pack)) = w.file.take() {
            let synced = file.sync_data();
            let mut s = lock(&self.sync);
            match synced {
                Ok(()) => s.durable = s.durable.max(w.appended),
                Err(e) => {
                    let lost = (s.durable, w.appended);
                    s.lost.push(lost);
                    drop(s);
                    lock(&self.found).failed.push(pack);
                    return Err(io_err("sync", &self.path(pack))(e));
                }
            }
        }
        Ok(())
    }

    /// Returns once record `number` is on disk: one request syncs for every record appended
    /// before it started, the others wait for it.
    ///
    /// A failed sync may have lost any record it covered, and a later sync of the same file
    /// could report success all the same (the kernel forgets the error once reported): the
    /// records it covered are failed for good, and the pack is closed so that the next record
    /// starts another.
    pub fn sync_to(&self, number: u64) -> Result<(), BlobError> {
        let mut s = lock(&self.sync);
        loop {
            if s.lost
                .iter()
                .any(|&(after, upto)| number > after && number <= upto)
            {
                return Err(BlobError::Io {
                    action: "sync",
                    path: self.dir.clone(),
                    source: std::io::Error::other("a sync of the pack holding this blob failed"),
                });
            }
            if s.durable >= number {
                return Ok(());
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.syncing = true;
            let from = s.durable;
            drop(s);
            let (target, open) = {
                let w = lock(&self.writer);
                (w.appended, w.file.clone())
            };
            // No pack open: the last was closed, and closing synced it (or recorded its loss).
            let failed = match &open {
                Some((file, pack)) => self.sync_data(file).err().map(|e| (e, *pack)),
                None => None,
            };
            if let Some((_, pack)) = &failed {
                let mut w = lock(&self.writer);
                if w.file.as_ref().is_some_and(|(_, p)| p == pack) {
                    w.file = None;
                }
            }
            s = lock(&self.sync);
            s.syncing = false;
            match failed {
                None => s.durable = s.durable.max(target),
                Some((e, pack)) => {
                    s.lost.push((from, target));
                    lock(&self.found).failed.push(pack);
                    self.synced.notify_all();
                    return Err(io_err("sync", &self.path(pack))(e));
                }
            }
            self.synced.notify_all();
        }
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        #[cfg(test)]
        if self
            .fail_sync
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(std::io::Error::other("a sync failed (a test's)"));
        }
        file.sync_data()
    }

    /// The bytes of blob `sha256` if a pack holds a whole, intact copy; `Ok(None)` if none does.
    pub fn read(&self, sha256: &Hash32) -> Result<Option<Vec<u8>>, BlobError> {
        let first = lock(&self.found).blobs.get(&sha256.0).copied();
        if let Some(loc) = first
            && let Some(bytes) = self.read_at(loc, sha256)?
        {
            return Ok(Some(bytes));
        }
        // Not found, or that copy is damaged: look in packs written since (by another process
        // sharing the folder), then at every copy.
        self.read_new()?;
        for loc in self.every_copy(sha256)? {
            if let Some(bytes) = self.read_at(loc, sha256)? {
                lock(&self.found).blobs.insert(sha256.0, loc);
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// Whether some pack holds blob `sha256`, intact or not.
    pub fn holds(&self, sha256: &Hash32) -> Result<bool, BlobError> {
        if lock(&self.found).blobs.contains_key(&sha256.0) {
            return Ok(true);
        }
        self.read_new()?;
        Ok(lock(&self.found).blobs.contains_key(&sha256.0))
    }

    /// The blob's bytes at `loc` if they hash to `sha256`.
    fn read_at(&self, loc: Loc, sha256: &Hash32) -> Result<Option<Vec<u8>>, BlobError> {
        let path = lock(&self.found).packs[loc.pack as usize].clone();
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let mut bytes = vec![0; loc.len as usize];
        match file.read_exact_at(&mut bytes, loc.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        Ok((Sha256::digest(&bytes).as_slice() == sha256.0).then_some(bytes))
    }

    /// Every record of `sha256` in every pack, read from the headers again.
    fn every_copy(&self, sha256: &Hash32) -> Result<Vec<Loc>, BlobError> {
        let packs = lock(&self.found).packs.clone();
        let mut out = Vec::new();
        for (pack, path) in packs.iter().enumerate() {
            let (records, _) = read_headers(path, 0)?;
            out.extend(
                records
                    .into_iter()
                    .filter(|(sha, _, _)| sha == &sha256.0)
                    .map(|(_, offset, len)| Loc {
                        pack: pack as u32,
                        offset,
                        len,
                    }),
            );
        }
        Ok(out)
    }

    /// Reads the headers written since the last look: new packs, and what packs still being
    /// written (by other processes) gained.
    fn read_new(&self) -> Result<(), BlobError> {
        let mut names: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pack"))
            .collect();
        names.sort();
        let mut found = lock(&self.found);
        for path in names {
            let pack = match found.numbers.get(&path) {
                Some(&n) => n,
                None => {
                    let n = found.packs.len() as u32;
                    found.numbers.insert(path.clone(), n);
                    found.packs.push(path.clone());
                    found.read_to.push(0);
                    n
                }
            };
            let (records, end) = read_headers(&path, found.read_to[pack as usize])?;
            found.read_to[pack as usize] = end;
            for (sha, offset, len) in records {
                found.blobs.entry(sha).or_insert(Loc { pack, offset, len });
            }
        }
        Ok(())
    }

    /// The hashes of the intact blobs in every pack.
    pub fn list(&self) -> Result<Vec<Hash32>, BlobError> {
        self.read_new()?;
        let found: Vec<([u8; 32], Loc)> = lock(&self.found)
            .blobs
            .iter()
            .map(|(sha, loc)| (*sha, *loc))
            .collect();
        let mut out = Vec::with_capacity(found.len());
        for (sha, loc) in found {
            let sha = Hash32(sha);
            if self.read_at(loc, &sha)?.is_some() || self.read(&sha)?.is_some() {
                out.push(sha);
            }
        }
        Ok(out)
    }
}

/// A whole record found in a pack: its blob's SHA-256, and its bytes' offset and length.
type Record = ([u8; 32], u64, u32);

/// The whole records of the pack at `path` from `from` on, and where the first incomplete or
/// unreadable one starts (where to look again later).
fn read_headers(path: &Path, from: u64) -> Result<(Vec<Record>, u64), BlobError> {
    let file = match File::open(path) {
        Ok(f) => f,
        // Gone meanwhile: nothing in it to serve.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), from)),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let size = file.metadata().map_err(io_err("read", path))?.len();
    let mut at = from;
    let mut out = Vec::new();
    let mut header = [0u8; HEADER];
    while at + HEADER as u64 <= size {
        file.read_exact_at(&mut header, at)
            .map_err(io_err("read", path))?;
        let Some((sha, len)) = parse_header(&header) else {
            break;
        };
        let body = at + HEADER as u64;
        if body + u64::from(len) > size {
            break;
        }
        out.push((sha, body, len));
        at = body + u64::from(len);
    }
    Ok((out, at))
}

/// A record header's SHA-256 and length, if it is one.
pub fn parse_header(header: &[u8; HEADER]) -> Option<([u8; 32], u32)> {
    if header[..4] != MAGIC {
        return None;
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&header[4..36]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[36..]);
    let len = u64::from_le_bytes(len);
    (len <= MAX_BLOB).then_some((sha, len as u32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fs::OpenOptions;

    use super::*;

    fn blob(n: u8, len: usize) -> (Hash32, Vec<u8>) {
        let bytes = vec![n; len];
        (Hash32(Sha256::digest(&bytes).into()), bytes)
    }

    #[test]
    fn kept_blobs_are_read_back_by_another_opening_and_torn_tails_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), "a").unwrap();
        let (sa, a) = blob(1, 1000);
        let (sb, b) = blob(2, 0);
        packs.keep(&sa, &a).unwrap();
        packs.keep(&sb, &b).unwrap();
        assert_eq!(packs.read(&sa).unwrap().unwrap(), a);
        assert_eq!(packs.read(&sb).unwrap().unwrap(), b);
        // A record cut short by a crash, after the two whole ones.
        let pack = dir.path().join("a-0.pack");
        let (sc, c) = blob(3, 500);
        let mut torn = MAGIC.to_vec();
        torn.extend_from_slice(&sc.0);
        torn.extend_from_slice(&500u64.to_le_bytes());
        torn.extend_from_slice(&c[..100]);
        let f = OpenOptions::new().append(true).open(&pack).unwrap();
        f.write_all_at(&torn, f.metadata().unwrap().len()).unwrap();
        drop(f);
        let other = Packs::open(dir.path(), "b").unwrap();
        assert_eq!(other.read(&sa).unwrap().unwrap(), a);
        assert!(other.read(&sc).unwrap().is_none());
        let mut listed = other.list().unwrap();
        listed.sort_by_key(|h| h.0);
        let mut want = vec![sa, sb];
        want.sort_by_key(|h| h.0);
        assert_eq!(listed, want);
        // The other process's blobs go into its own pack, and the first finds them.
        other.keep(&sc, &c).unwrap();
        assert_eq!(packs.read(&sc).unwrap().unwrap(), c);
        assert!(dir.path().join("b-0.pack").is_file());
    }

    #[test]
    fn a_blob_kept_again_is_appended_again_only_if_its_copy_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), "a").unwrap();
        let (sa, a) = blob(7, 300);
        packs.keep(&sa, &a).unwrap();
        let pack = dir.path().join("a-0.pack");
        let once = fs::metadata(&pack).unwrap().len();
        packs.keep(&sa, &a).unwrap();
        assert_eq!(fs::metadata(&pack).unwrap().len(), once);
        // Damaged: kept again whole.
        let mut bytes = fs::read(&pack).unwrap();
        bytes[HEADER + 10] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        packs.keep(&sa, &a).unwrap();
        assert_eq!(fs::metadata(&pack).unwrap().len(), 2 * once);
        assert_eq!(packs.read(&sa).unwrap().unwrap(), a, "the second copy");
    }

    #[test]
    fn a_copy_whose_sync_failed_is_never_taken_for_kept_and_the_blob_goes_into_a_new_pack() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), "a").unwrap();
        let (sa, a) = blob(9, 300);
        let first = packs.keep_later(&sa, &a).unwrap().unwrap();
        packs
            .fail_sync
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(packs.sync_to(first).is_err());
        // The copy reads back whole from the page cache, and a new sync of its file may well
        // succeed: neither says it reached the disk. Kept again, it is appended again.
        let again = packs.keep_later(&sa, &a).unwrap();
        let again = again.expect("appended again, not taken from the failed pack");
        assert!(again > first);
        packs.sync_to(again).unwrap();
        assert!(packs.sync_to(first).is_err(), "failed for good");
        assert!(dir.path().join("a-1.pack").is_file(), "in a new pack");
        assert_eq!(packs.read(&sa).unwrap().unwrap(), a);
    }

    #[test]
    fn a_damaged_copy_is_not_served_and_a_whole_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), "a").unwrap();
        let (sa, a) = blob(7, 300);
        packs.append(&sa, &a).unwrap();
        packs.append(&sa, &a).unwrap();
        let pack = dir.path().join("a-0.pack");
        let mut bytes = fs::read(&pack).unwrap();
        bytes[HEADER + 10] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        assert_eq!(packs.read(&sa).unwrap().unwrap(), a, "the second copy");
        bytes[2 * HEADER + 300 + 10] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        assert!(packs.read(&sa).unwrap().is_none());
        assert!(packs.holds(&sa).unwrap());
    }

    #[test]
    fn blobs_kept_at_once_from_many_threads_are_all_there() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), "a").unwrap();
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let packs = &packs;
                s.spawn(move || {
                    for i in 0..25u8 {
                        let (sha, bytes) = blob(t * 25 + i, 100 + usize::from(i));
                        packs.keep(&sha, &bytes).unwrap();
                    }
                });
            }
        });
        let again = Packs::open(dir.path(), "b").unwrap();
        assert_eq!(again.list().unwrap().len(), 200);
    }

    proptest::proptest! {
        /// Whatever a pack file holds, reading its headers never panics, and finds only records
        /// that lie wholly inside the file, one after another from the start.
        #[test]
        fn any_bytes_read_as_whole_records_in_order(bytes in proptest::collection::vec(
            proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.pack");
            fs::write(&path, &bytes).unwrap();
            let (records, end) = read_headers(&path, 0).unwrap();
            let mut at = 0u64;
            for (_, offset, len) in &records {
                proptest::prop_assert_eq!(*offset, at + HEADER as u64);
                at = offset + u64::from(*len);
            }
            proptest::prop_assert_eq!(end, at);
            proptest::prop_assert!(end <= bytes.len() as u64);
        }

        /// Records written, then the file cut anywhere: what is read is exactly the records
        /// wholly before the cut, and reading on from there after the rest arrives finds the
        /// others.
        #[test]
        fn a_cut_pack_reads_as_the_records_before_the_cut(
            lens in proptest::collection::vec(0usize..200, 1..6),
            cut_at in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let packs = Packs::open(dir.path(), "p").unwrap();
            let mut kept = Vec::new();
            for (n, len) in lens.iter().enumerate() {
                let (sha, bytes) = blob(n as u8, *len);
                packs.append(&sha, &bytes).unwrap();
                kept.push((sha, *len));
            }
            let path = dir.path().join("p-0.pack");
            let whole = fs::read(&path).unwrap();
            let cut = (whole.len() as f64 * cut_at) as usize;
            fs::write(&path, &whole[..cut]).unwrap();
            let (records, end) = read_headers(&path, 0).unwrap();
            let mut at = 0;
            let mut before = 0;
            for (_, len) in &kept {
                if at + HEADER + len > cut {
                    break;
                }
                at += HEADER + len;
                before += 1;
            }
            proptest::prop_assert_eq!(records.len(), before);
            for ((sha, _, len), (want, want_len)) in records.iter().zip(&kept) {
                proptest::prop_assert_eq!(sha, &want.0);
                proptest::prop_assert_eq!(*len as usize, *want_len);
            }
            fs::write(&path, &whole).unwrap();
            let (rest, _) = read_headers(&path, end).unwrap();
            proptest::prop_assert_eq!(before + rest.len(), kept.len());
        }
    }

    #[test]
    fn headers_that_are_not_records_end_the_reading() {
        let mut h = [0u8; HEADER];
        assert!(parse_header(&h).is_none());
        h[..4].copy_from_slice(&MAGIC);
        h[36..].copy_from_slice(&(MAX_BLOB + 1).to_le_bytes());
        assert!(parse_header(&h).is_none());
        h[36..].copy_from_slice(&MAX_BLOB.to_le_bytes());
        assert_eq!(parse_header(&h).unwrap().1 as u64, MAX_BLOB);
    }
}
