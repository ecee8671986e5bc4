//! The spool on disk: what the store refused (missed ticks, outcomes),
//! written ahead to a file in the state directory's `spool/`, so it outlives
//! the process that kept it (issue 14, guarantee 8: "even if the daemon
//! restarts in between"). Backend-neutral: files and locks only.
//!
//! One file per process (`PID-N.spool`), held with an exclusive `flock` for
//! as long as its recorder lives. A file whose lock can be taken was left by
//! a process that ended (the lock dies with its holder, as the SQLite
//! backend's leases do), and the next recorder to start in the same state
//! directory takes it over ([`SpoolFile::open`]); a file still locked belongs
//! to a live process (the daemon beside a `jobrun run`) and is left to it.
//!
//! Format, version [`VERSION`]: the magic `jobrun-spool\n`, the version as a
//! u32 (little-endian), then frames: the payload's length (u32), its CRC-32
//! (u32), the payload (one [`Entry`] as JSON). Appends are fsync'd before the
//! recorder counts an item as kept (write-ahead). When the store has taken
//! some of what is kept, the file is rewritten (a locked temporary file,
//! fsync, rename over it); when it has taken all, it is cut back to its
//! header.
//!
//! Reading is forgiving where a crash can leave damage, strict elsewhere: a
//! frame cut short at the end (a write torn by a crash or a full disk) is
//! ignored with a warning; a bad checksum or record before the end, a wrong
//! magic or another version makes the file corrupt or foreign: it is moved
//! aside (renamed `.aside`) with a warning, and the entries before the bad
//! frame are still used. Nothing here panics on what a file holds.
//!
//! Knows files, locks and the entries' shape; nothing of the store.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::job::{RunId, RunOutcome};
use crate::private_dir::{self, Links};
use crate::store::NewRun;

/// The version of the format this jobrun writes and reads.
pub const VERSION: u32 = 1;
const MAGIC: &[u8] = b"jobrun-spool\n";
const HEADER_LEN: u64 = MAGIC.len() as u64 + 4;
const FRAME_HEAD: usize = 8;

/// One item of the spool, as a frame's payload holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Entry {
    /// An outcome to record (only if its run still reads `running`).
    Finish { run: RunId, outcome: RunOutcome },
    /// A tick to record `missed`, through the claim (never beside a run).
    Missed { claim: NewRun },
    /// How many older items were not kept past the bound: `job`'s missed
    /// ticks, or (no job) outcomes.
    Dropped { job: Option<String>, count: u64 },
}

/// This process's spool file, locked, and the files of ended processes it
/// took over until what they held is safe in the store or in this file.
pub(super) struct SpoolFile {
    dir: PathBuf,
    path: PathBuf,
    file: Flock<File>,
    /// Bytes of whole frames (an append that failed is cut back to this).
    len: u64,
    /// Entries the file holds.
    frames: usize,
    taken: Vec<Taken>,
}

/// A file of an ended process, locked while its entries are in memory only.
struct Taken {
    path: PathBuf,
    _file: Flock<File>,
    /// Why it is moved aside rather than removed once released.
    aside: Option<String>,
}

impl SpoolFile {
    /// Creates this process's spool file in `dir` (created 0700 if missing)
    /// and takes over the files processes that ended left there: returns
    /// their entries, oldest file first by name. They stay on disk until
    /// [`release_taken`](Self::release_taken).
    pub(super) fn open(dir: &Path) -> io::Result<(SpoolFile, Vec<Entry>)> {
        if let Some(warning) = private_dir::ensure(dir, Links::Refuse, private_dir::euid())
            .map_err(io::Error::other)?
        {
            warn!(dir = %dir.display(), "{warning}");
        }
        let (path, file) = create(dir)?;
        let mut spool = SpoolFile {
            dir: dir.to_path_buf(),
            path,
            file,
            len: HEADER_LEN,
            frames: 0,
            taken: Vec::new(),
        };
        let entries = spool.take_over()?;
        Ok((spool, entries))
    }

    /// Where this process's spool is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the file holds.
    pub(super) fn frames(&self) -> usize {
        self.frames
    }

    /// Appends `entries` and makes them durable (fsync) before returning.
    /// On an error (a full disk) the file is cut back to its whole frames.
    pub(super) fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = encode(entries)?;
        let written = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&bytes))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A torn frame at the end would be ignored on reading, but a
            // later append after it would not be: cut it off now.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.frames += entries.len();
        Ok(())
    }

    /// Makes the file hold exactly `entries`: cut back to its header when
    /// there are none, else rewritten whole (a new locked file renamed over
    /// this one, so a crash leaves the old or the new, never half).
    pub(super) fn rewrite(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            self.file.set_len(HEADER_LEN)?;
            self.file.sync_data()?;
            self.len = HEADER_LEN;
            self.frames = 0;
            return Ok(());
        }
        let mut bytes = header();
        bytes.extend(encode(entries)?);
        let tmp = self.path.with_extension("tmp");
        // Another process's start may remove a temporary file it can lock
        // (one a crash left) in the instant before this one locks it: the
        // rename then finds nothing, and a second try does.
        let mut tries = 0;
        let file = loop {
            tries += 1;
            let renamed = write_locked(&tmp, &bytes)
                .and_then(|file| std::fs::rename(&tmp, &self.path).map(|()| file));
            match renamed {
                Ok(file) => break file,
                Err(e)
                    if tries < 3
                        && matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::WouldBlock
                        ) => {}
                Err(e) => return Err(e),
            }
        };
        sync_dir(&self.dir);
        // The old file's lock goes with it; the new one was locked before
        // its name was.
        self.file = file;
        self.len = bytes.len() as u64;
        self.frames = entries.len();
        Ok(())
    }

    /// Removes (or moves aside, when corrupt) the files taken over: what they
    /// held is now in the store or in this process's file.
    pub(super) fn release_taken(&mut self) {
        if self.taken.is_empty() {
            return;
        }
        for taken in self.taken.drain(..) {
            match &taken.aside {
                Some(why) => move_aside(&taken.path, why),
                None => {
                    if let Err(e) = std::fs::remove_file(&taken.path) {
                        warn!(file = %taken.path.display(), error = %e, "removing a spool file taken over");
                    }
                }
            }
        }
        sync_dir(&self.dir);
    }

    /// Removes this process's file (its recorder ends with nothing kept).
    pub(super) fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!(file = %self.path.display(), error = %e, "removing the empty spool file");
        }
    }

    /// Reads and locks every spool file of an ended process in the
    /// directory; removes temporary files a crash left.
    fn take_over(&mut self) -> io::Result<Vec<Entry>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut entries = Vec::new();
        for name in names {
            let path = self.dir.join(&name);
            if path == self.path {
                continue;
            }
            if name.ends_with(".tmp") {
                if let Ok(Some(_)) = lock_if_ended(&path) {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            if !name.ends_with(".spool") {
                continue; // moved aside earlier, or not jobrun's
            }
            let mut file = match lock_if_ended(&path) {
                Ok(Some(file)) => file,
                Ok(None) => continue, // a live process's
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "cannot take over a spool file; left as it is");
                    continue;
                }
            };
            let mut bytes = Vec::new();
            if let Err(e) = file.read_to_end(&mut bytes) {
                warn!(file = %path.display(), error = %e, "cannot read a spool file; left as it is");
                continue;
            }
            let read = decode(&bytes);
            let aside = match read.damage {
                Some(Damage::TornEnd { at }) => {
                    warn!(file = %path.display(), at, kept = read.entries.len(),
                        "a spool file ends in a torn record (a write cut short); that record is ignored");
                    None
                }
                Some(Damage::Corrupt(why)) => {
                    warn!(file = %path.display(), kept = read.entries.len(), problem = %why,
                        "a spool file is corrupt or not jobrun's; it is moved aside, the entries before the damage are used");
                    Some(why)
                }
                None => None,
            };
            entries.extend(read.entries);
            self.taken.push(Taken {
                path,
                _file: file,
                aside,
            });
        }
        Ok(entries)
    }
}

/// What a spool file held, and where it stops making sense.
struct Decoded {
    entries: Vec<Entry>,
    damage: Option<Damage>,
}

enum Damage {
    /// The last frame is cut short (at this byte): a torn write.
    TornEnd { at: usize },
    /// Not a spool file of this version, or damaged before its end.
    Corrupt(String),
}

fn header() -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(VERSION.to_le_bytes());
    bytes
}

fn encode(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for entry in entries {
        let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("a spool entry larger than 4 GiB"))?;
        bytes.extend(len.to_le_bytes());
        bytes.extend(crc32(&payload).to_le_bytes());
        bytes.extend(payload);
    }
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Decoded {
    let corrupt = |why: String| Decoded {
        entries: Vec::new(),
        damage: Some(Damage::Corrupt(why)),
    };
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return corrupt("it does not start as a jobrun spool file".into());
    };
    let Some(version) = rest.get(..4).and_then(|v| <[u8; 4]>::try_from(v).ok()) else {
        return corrupt("its header is cut short".into());
    };
    let version = u32::from_le_bytes(version);
    if version != VERSION {
        return corrupt(format!(
            "it has format version {version}, and this jobrun reads version {VERSION}"
        ));
    }
    let mut out = Decoded {
        entries: Vec::new(),
        damage: None,
    };
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        // A crash can leave the end of a file zero-filled as well as short.
        let torn = rest.iter().all(|b| *b == 0) || rest.len() < FRAME_HEAD;
        let frame = (!torn).then(|| {
            let word =
                |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            (word(0) as usize, word(4))
        });
        let Some((len, sum)) = frame.filter(|(len, _)| FRAME_HEAD + len <= rest.len()) else {
            out.damage = Some(Damage::TornEnd { at });
            break;
        };
        let payload = &rest[FRAME_HEAD..FRAME_HEAD + len];
        let end = at + FRAME_HEAD + len;
        if crc32(payload) != sum {
            out.damage = Some(if end == bytes.len() {
                Damage::TornEnd { at }
            } else {
                Damage::Corrupt(format!("the record at byte {at} fails its checksum"))
            });
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(entry) => out.entries.push(entry),
            Err(e) => {
                out.damage = Some(Damage::Corrupt(format!("the record at byte {at}: {e}")));
                break;
            }
        }
        at = end;
    }
    out
}

/// Creates this process's file: written and locked under a temporary name,
/// then linked to a name no other file has (a link never replaces), so no
/// other process ever sees it unlocked or without its header.
fn create(dir: &Path) -> io::Result<(PathBuf, Flock<File>)> {
    let pid = std::process::id();
    for n in 0..1000 {
        let tmp = dir.join(format!("{pid}-{n}.tmp"));
        let path = dir.join(format!("{pid}-{n}.spool"));
        if path.exists() {
            continue;
        }
        let file = match write_locked(&tmp, &header()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(dir);
                return Ok((path, file));
            }
            // Taken meanwhile, or the temporary file removed by another
            // process's start before it was locked: another name.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "no free spool file name in {}",
        dir.display()
    )))
}

/// Writes `bytes` to `path` (replacing what a file there held), locked
/// before anything is cut or written (a file another holds is left alone:
/// `WouldBlock`), fsync'd.
fn write_locked(path: &Path, bytes: &[u8]) -> io::Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    file.set_len(0)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(file)
}

/// Locks the spool file `path` if the process that wrote it has ended (its
/// lock is free) and the name still leads to the file locked. `Ok(None)`
/// when a live process holds it, or it was removed or replaced meanwhile.
fn lock_if_ended(path: &Path) -> io::Result<Option<Flock<File>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => file,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, errno)) => return Err(errno.into()),
    };
    // Removed, or renamed over by its owner's rewrite, after it was opened.
    match std::fs::symlink_metadata(path) {
        Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => Ok(Some(file)),
        _ => Ok(None),
    }
}

/// Renames a corrupt file out of the way (`NAME.aside`, or `NAME.aside.N`
/// beside earlier ones): kept for a person to look at, never read again.
fn move_aside(path: &Path, why: &str) {
    let free = (0..100)
        .map(|n| match n {
            0 => format!("{}.aside", path.display()),
            n => format!("{}.aside.{n}", path.display()),
        })
        .map(PathBuf::from)
        .find(|p| std::fs::symlink_metadata(p).is_err());
    let moved = match free {
        Some(to) => std::fs::rename(path, &to).map(|()| to),
        None => Err(io::Error::other("no free name to move it to")),
    };
    match moved {
        Ok(to) => warn!(file = %path.display(), to = %to.display(), problem = %why,
            "moved a corrupt spool file aside"),
        Err(e) => warn!(file = %path.display(), error = %e, problem = %why,
            "cannot move a corrupt spool file aside"),
    }
}

/// Makes a rename or a new name durable (best effort: a directory that
/// cannot be opened still has the name, only not yet on disk).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// CRC-32 (IEEE, as zlib and gzip): a torn or damaged frame fails it.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RunStatus, Trigger};
    use chrono::DateTime;
    use std::sync::Arc;

    pub(crate) fn finish(id: i64, tail: &[u8]) -> Entry {
        let at = DateTime::from_timestamp(1_780_000_000 + id, 0).unwrap();
        Entry::Finish {
            run: RunId(id),
            outcome: RunOutcome {
                status: RunStatus::Failed,
                finished_at: at,
                duration_ms: Some(7),
                exit_code: Some(3),
                signal: None,
                output_bytes: 12,
                output_tail: Arc::from(tail),
                error: Some("exit 3".into()),
            },
        }
    }

    fn missed(job: &str) -> Entry {
        let at = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        Entry::Missed {
            claim: NewRun {
                job: job.into(),
                trigger: Trigger::CatchUp,
                tick: Some(at),
                status: RunStatus::Missed,
                at,
                host: "h".into(),
                owner: "o".into(),
                error: Some("not claimed".into()),
                parent_id: Some(RunId(4)),
                attempt: 2,
            },
        }
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn entries_read_back_as_written_text_and_binary_tails_alike() {
        let entries = vec![
            finish(1, b"ok\n"),
            finish(2, &[0xff, 0x00, 0x80]),
            missed("a"),
            Entry::Dropped {
                job: Some("a".into()),
                count: 3,
            },
        ];
        let mut bytes = header();
        bytes.extend(encode(&entries).unwrap());
        let read = decode(&bytes);
        assert!(read.damage.is_none());
        assert_eq!(read.entries, entries);
    }

    #[test]
    fn a_torn_end_is_ignored_and_damage_before_the_end_is_corruption() {
        let entries = vec![finish(1, b"one"), finish(2, b"two")];
        let mut bytes = header();
        bytes.extend(encode(&entries).unwrap());
        let whole = bytes.len();
        // Cut anywhere inside the last frame, or zero-filled after it.
        let second = whole - encode(&entries[1..]).unwrap().len();
        for cut in [second + 1, second + FRAME_HEAD, whole - 1] {
            let read = decode(&bytes[..cut]);
            assert_eq!(read.entries, entries[..1], "cut at {cut}");
            assert!(matches!(read.damage, Some(Damage::TornEnd { .. })));
        }
        let mut zeros = bytes[..second].to_vec();
        zeros.extend([0u8; 64]);
        assert!(matches!(
            decode(&zeros).damage,
            Some(Damage::TornEnd { .. })
        ));
        // The last byte of the last frame flipped: torn, not corrupt.
        let mut last = bytes.clone();
        last[whole - 2] ^= 1;
        assert!(matches!(decode(&last).damage, Some(Damage::TornEnd { .. })));
        // A byte of the first frame flipped: corrupt, nothing after it used.
        let mut first = bytes.clone();
        first[HEADER_LEN as usize + FRAME_HEAD + 2] ^= 1;
        let read = decode(&first);
        assert!(read.entries.is_empty());
        assert!(matches!(read.damage, Some(Damage::Corrupt(why)) if why.contains("checksum")));
        // Not jobrun's, or another version.
        assert!(matches!(decode(b"hello").damage, Some(Damage::Corrupt(_))));
        let mut newer = bytes.clone();
        newer[MAGIC.len()] = 2;
        assert!(
            matches!(decode(&newer).damage, Some(Damage::Corrupt(why)) if why.contains("version 2"))
        );
    }

    #[test]
    fn a_live_process_file_is_left_to_it_and_an_ended_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let (mut live, found) = SpoolFile::open(&spool).unwrap();
        assert!(found.is_empty());
        live.append(&[finish(1, b"x")]).unwrap();
        // A second recorder beside the live one sees nothing to take over.
        let (mut second, found) = SpoolFile::open(&spool).unwrap();
        assert!(found.is_empty());
        assert_ne!(second.path(), live.path());
        second.append(&[missed("b")]).unwrap();
        drop(second); // ended without removing its file
        let (mut third, found) = SpoolFile::open(&spool).unwrap();
        assert_eq!(found, vec![missed("b")]);
        third.rewrite(&found).unwrap();
        third.release_taken();
        assert_eq!(third.frames(), 1);
        let names: Vec<String> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // The rewritten file is still locked: a fourth one takes nothing.
        let (_fourth, found) = SpoolFile::open(&spool).unwrap();
        assert!(found.is_empty());
    }
}
