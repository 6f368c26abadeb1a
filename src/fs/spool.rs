//! A spool: append-only logs of keyed records, kept between a piece of work
//! finishing and its being assembled (`grab dataset` spools each finished
//! sample here until its shard is written). One folder per spool, holding
//! `0.log`, and `1.log`... only while runs overlap: a run appends to the
//! first log it can lock (std's file lock, dropped by the system when the
//! run dies) and reads the others.
//!
//! Appending a record costs one positional write: no file is created or
//! renamed per record, which is what a file per record cost (a quarter of a
//! dataset run's CPU time in ext4's create and rename, issue 24). A record
//! is
//!
//! ```text
//! magic "gsp1" | CRC-32 (LE u32) | key (LE u64) | length (LE u64) | payload
//! ```
//!
//! the CRC over the key, the length and the payload. A run killed
//! mid-record, a disk that filled up mid-write, or a bit flipped on disk
//! leaves a record that is short or fails its checksum: on opening, a log is
//! read record by record up to the first such one, and cut there before
//! anything is appended, so every record before it counts and nothing after
//! it does. Records are read back by offset from an index of key to place,
//! one record in memory at a time.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::system::{open_no_follow, read_exact_at, write_all_at};

/// The first bytes of every record.
const MAGIC: [u8; 4] = *b"gsp1";

/// A record's bytes before its payload: magic, CRC, key, length.
pub const HEADER: usize = 24;

/// The extension of a spool's logs.
const LOG_EXTENSION: &str = "log";

/// An open spool: the log this run appends to, locked for as long as it is
/// open, and where every whole record of the folder's logs is.
#[derive(Debug)]
pub struct Spool {
    folder: PathBuf,
    /// This run's log first, then other runs' (read only).
    logs: Vec<Log>,
    /// Where this run's log ends: the next record goes there.
    end: u64,
    index: HashMap<u64, Place>,
}

#[derive(Debug)]
struct Log {
    path: PathBuf,
    file: File,
}

/// Where a record is: which log, the offset of its header, its payload's length.
#[derive(Debug, Clone, Copy)]
struct Place {
    log: usize,
    offset: u64,
    length: u64,
}

/// A whole record found in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub key: u64,
    /// Of its header, from the start of the log.
    pub offset: u64,
    /// Of its payload.
    pub length: u64,
}

/// A log read from its start: its whole records, and where the last ends
/// (short of the file's length when a torn or damaged record follows).
#[derive(Debug)]
pub struct Scan {
    pub records: Vec<Found>,
    pub end: u64,
    pub length: u64,
}

impl Spool {
    /// Opens the spool in `folder`, creating it: takes the first log no
    /// other live run holds, cuts its torn tail, and indexes the whole
    /// records of every log there. A log another run holds is read as far
    /// as it is whole; one that cannot be read (Windows refuses reading a
    /// file another process locked) is left out, its records done again.
    pub fn open(folder: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(folder)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let mut number = 0u64;
        let own = loop {
            let path = folder.join(format!("{number}.{LOG_EXTENSION}"));
            let file = open_no_follow(&options, &path)?;
            match file.try_lock() {
                Ok(()) => break Log { path, file },
                Err(TryLockError::WouldBlock) => number += 1,
                Err(TryLockError::Error(error)) => return Err(error),
            }
        };
        let own_scan = scan(&own.file)?;
        if own_scan.end < own_scan.length {
            // Appending after a torn record would leave every later record
            // behind it, unreadable.
            own.file.set_len(own_scan.end)?;
        }
        let end = own_scan.end;
        let mut logs = vec![own];
        let mut scans = vec![own_scan];
        let mut reading = OpenOptions::new();
        reading.read(true);
        for other in log_numbers(folder)? {
            if other == number {
                continue;
            }
            let path = folder.join(format!("{other}.{LOG_EXTENSION}"));
            let Ok(file) = open_no_follow(&reading, &path) else {
                continue;
            };
            let Ok(other_scan) = scan(&file) else {
                continue;
            };
            logs.push(Log { path, file });
            scans.push(other_scan);
        }
        let mut index = HashMap::new();
        // This run's log last: its record of a key is the one kept.
        for (log, scan) in scans.iter().enumerate().rev() {
            for record in &scan.records {
                let place = Place {
                    log,
                    offset: record.offset,
                    length: record.length,
                };
                index.insert(record.key, place);
            }
        }
        Ok(Spool {
            folder: folder.to_path_buf(),
            logs,
            end,
            index,
        })
    }

    /// The folder of the spool's logs.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The log this run appends to.
    pub fn log_path(&self) -> &Path {
        &self.logs[0].path
    }

    /// Whether a whole record of `key` is in the spool.
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains_key(&key)
    }

    /// Records in the spool (one per key).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Appends the record of `key`, its payload the concatenation of
    /// `parts`, in one write. On an error (a full disk) nothing of it
    /// stays: the log is cut back to where it ended.
    pub fn append(&mut self, key: u64, parts: &[&[u8]]) -> io::Result<()> {
        let record = encode(key, parts);
        let log = &self.logs[0];
        if let Err(error) = write_all_at(&log.file, &record, self.end) {
            let _ = log.file.set_len(self.end);
            return Err(error);
        }
        let place = Place {
            log: 0,
            offset: self.end,
            length: (record.len() - HEADER) as u64,
        };
        self.index.insert(key, place);
        self.end += record.len() as u64;
        Ok(())
    }

    /// The payload of `key`'s record, none when the spool has none; its
    /// checksum is verified again. An error names the log.
    pub fn read(&self, key: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(place) = self.index.get(&key) else {
            return Ok(None);
        };
        let log = &self.logs[place.log];
        let damaged = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the record of {key} at byte {} of {} {what}",
                    place.offset,
                    log.path.display()
                ),
            )
        };
        let total = usize::try_from(place.length)
            .ok()
            .and_then(|length| length.checked_add(HEADER))
            .ok_or_else(|| damaged("is too long to read"))?;
        let mut record = vec![0; total];
        read_exact_at(&log.file, &mut record, place.offset).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot read {}: {error}", log.path.display()),
            )
        })?;
        let header: &[u8; HEADER] = record[..HEADER].try_into().expect("a header's length");
        let (found, checksum) = decode_header(header).ok_or_else(|| damaged("has no header"))?;
        if found.key != key || found.length != place.length {
            return Err(damaged("is another record"));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&record[8..]);
        if hasher.finalize() != checksum {
            return Err(damaged("fails its checksum"));
        }
        record.drain(..HEADER);
        Ok(Some(record))
    }

    /// Closes the spool and removes its folder, every log in it: its
    /// records are assembled. The logs are closed first (Windows removes no
    /// open file).
    pub fn remove(self) -> io::Result<()> {
        let folder = self.folder;
        drop(self.logs);
        std::fs::remove_dir_all(&folder)
    }
}

/// Whole records in the logs of the spool in `folder`, read without taking
/// any log (a run may be appending to them): what a resume would count.
pub fn records_in(folder: &Path) -> io::Result<u64> {
    let mut count = 0;
    for number in log_numbers(folder)? {
        let path = folder.join(format!("{number}.{LOG_EXTENSION}"));
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        count += scan(&file)?.records.len() as u64;
    }
    Ok(count)
}

/// The numbers of the logs in `folder`, sorted; none when there is no folder.
fn log_numbers(folder: &Path) -> io::Result<Vec<u64>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut numbers = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_suffix(LOG_EXTENSION)?.strip_suffix('.'))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok());
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// A record's bytes: its header, then `parts` one after the other.
pub fn encode(key: u64, parts: &[&[u8]]) -> Vec<u8> {
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let mut record = Vec::with_capacity(HEADER + length);
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&key.to_le_bytes());
    record.extend_from_slice(&(length as u64).to_le_bytes());
    for part in parts {
        record.extend_from_slice(part);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&record[8..]);
    record[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
    record
}

/// A header's key and length (its offset unknown here: 0), and the
/// checksum it records; none without the magic.
fn decode_header(header: &[u8; HEADER]) -> Option<(Found, u32)> {
    if header[..4] != MAGIC {
        return None;
    }
    let word = |range: std::ops::Range<usize>| -> [u8; 8] {
        header[range].try_into().expect("eight bytes")
    };
    let checksum = u32::from_le_bytes(header[4..8].try_into().expect("four bytes"));
    let found = Found {
        key: u64::from_le_bytes(word(8..16)),
        offset: 0,
        length: u64::from_le_bytes(word(16..24)),
    };
    Some((found, checksum))
}

/// Reads the log `file` from its start, record by record, up to its end or
/// the first record that is short, lacks the magic or fails its checksum.
/// Payloads are checked a piece at a time: memory stays flat whatever a
/// record's length.
pub fn scan(file: &File) -> io::Result<Scan> {
    let length = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader.seek(SeekFrom::Start(0))?;
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut piece = vec![0; 64 * 1024];
    while length - offset >= HEADER as u64 {
        let mut header = [0; HEADER];
        reader.read_exact(&mut header)?;
        let Some((mut found, checksum)) = decode_header(&header) else {
            break;
        };
        if found.length > length - offset - HEADER as u64 {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..]);
        let mut left = found.length;
        while left > 0 {
            let size = piece.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            reader.read_exact(&mut piece[..size])?;
            hasher.update(&piece[..size]);
            left -= size as u64;
        }
        if hasher.finalize() != checksum {
            break;
        }
        found.offset = offset;
        records.push(found);
        offset += HEADER as u64 + found.length;
    }
    Ok(Scan {
        records,
        end: offset,
        length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(key: u64) -> Vec<u8> {
        (0..(key * 37 % 200 + 1)).map(|byte| byte as u8).collect()
    }

    /// A spool in a fresh folder with records 0..count.
    fn filled(count: u64) -> (tempfile::TempDir, PathBuf) {
        let (scratch, folder) = crate::fs::scratch_file("00000");
        let mut spool = Spool::open(&folder).unwrap();
        for key in 0..count {
            // In two parts, as a sample's metadata and image.
            let bytes = payload(key);
            let (metadata, image) = bytes.split_at(bytes.len() / 2);
            spool.append(key, &[metadata, image]).unwrap();
        }
        (scratch, folder)
    }

    #[test]
    fn a_record_is_its_header_then_its_payload() {
        let record = encode(7, &[b"ab", b"", b"cde"]);
        assert_eq!(record.len(), HEADER + 5);
        assert_eq!(&record[..4], b"gsp1");
        assert_eq!(&record[8..16], &7u64.to_le_bytes());
        assert_eq!(&record[16..24], &5u64.to_le_bytes());
        assert_eq!(&record[24..], b"abcde");
        let checksum = crc32fast::hash(&record[8..]);
        assert_eq!(&record[4..8], &checksum.to_le_bytes());
    }

    #[test]
    fn records_read_back_by_key_in_this_run_and_the_next() {
        let (_scratch, folder) = filled(20);
        let spool = Spool::open(&folder).unwrap();
        assert_eq!(spool.len(), 20);
        for key in 0..20 {
            assert_eq!(spool.read(key).unwrap(), Some(payload(key)), "{key}");
        }
        assert_eq!(spool.read(20).unwrap(), None);
        assert!(spool.contains(19) && !spool.contains(20));
        assert_eq!(records_in(&folder).unwrap(), 20);
        // One log: no file per record.
        assert_eq!(log_numbers(&folder).unwrap(), [0]);
        spool.remove().unwrap();
        assert!(!folder.exists());
    }

    #[test]
    fn a_torn_tail_is_cut_before_appending_at_every_offset_of_the_last_record() {
        let (_scratch, folder) = filled(5);
        let log = folder.join("0.log");
        let whole = std::fs::read(&log).unwrap();
        let last = scan(&File::open(&log).unwrap()).unwrap().records[4];
        assert_eq!(
            last.offset + HEADER as u64 + last.length,
            whole.len() as u64
        );
        for cut in last.offset + 1..whole.len() as u64 {
            std::fs::write(&log, &whole[..cut as usize]).unwrap();
            let mut spool = Spool::open(&folder).unwrap();
            assert_eq!(spool.len(), 4, "cut at {cut}");
            assert!(!spool.contains(4));
            assert_eq!(std::fs::metadata(&log).unwrap().len(), last.offset);
            spool.append(4, &[b"again"]).unwrap();
            spool.append(5, &[b"after"]).unwrap();
            drop(spool);
            let spool = Spool::open(&folder).unwrap();
            assert_eq!(spool.len(), 6, "cut at {cut}");
            assert_eq!(spool.read(4).unwrap().unwrap(), b"again");
            assert_eq!(spool.read(5).unwrap().unwrap(), b"after");
            assert_eq!(spool.read(3).unwrap(), Some(payload(3)));
        }
    }

    #[test]
    fn a_record_failing_its_checksum_ends_the_log_there() {
        let (_scratch, folder) = filled(6);
        let log = folder.join("0.log");
        let records = scan(&File::open(&log).unwrap()).unwrap().records;
        let whole = std::fs::read(&log).unwrap();
        // A payload byte, the key, the length, the magic, the checksum itself.
        let third = records[2].offset as usize;
        for flipped in [third + HEADER, third + 9, third + 17, third, third + 5] {
            let mut bytes = whole.clone();
            bytes[flipped] ^= 0x40;
            std::fs::write(&log, &bytes).unwrap();
            let spool = Spool::open(&folder).unwrap();
            assert_eq!(spool.len(), 2, "byte {flipped} flipped");
            assert!(spool.contains(1) && !spool.contains(2) && !spool.contains(5));
            assert_eq!(std::fs::metadata(&log).unwrap().len(), third as u64);
        }
    }

    // Windows refuses writing to a log another handle has locked.
    #[cfg(unix)]
    #[test]
    fn a_record_damaged_after_opening_is_an_error_naming_the_log() {
        let (_scratch, folder) = filled(3);
        let spool = Spool::open(&folder).unwrap();
        let log = folder.join("0.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&log, &bytes).unwrap();
        let error = spool.read(2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("0.log"), "{error}");
        assert!(error.to_string().contains("checksum"), "{error}");
        assert_eq!(spool.read(1).unwrap(), Some(payload(1)));
    }

    #[test]
    fn a_second_run_appends_to_a_log_of_its_own_and_reads_the_first() {
        let (_scratch, folder) = filled(3);
        let mut first = Spool::open(&folder).unwrap();
        first.append(10, &[b"first"]).unwrap();
        // The first log is locked: the second takes 1.log.
        let mut second = Spool::open(&folder).unwrap();
        assert_eq!(second.log_path(), folder.join("1.log"));
        second.append(11, &[b"second"]).unwrap();
        // Windows refuses reading a file another handle has locked: there
        // the second run does the first's records again.
        if cfg!(unix) {
            assert_eq!(second.len(), 5);
            assert_eq!(second.read(10).unwrap().unwrap(), b"first");
        }
        drop((first, second));
        let spool = Spool::open(&folder).unwrap();
        assert_eq!(spool.log_path(), folder.join("0.log"));
        assert_eq!(spool.len(), 5);
        assert_eq!(spool.read(11).unwrap().unwrap(), b"second");
        assert_eq!(records_in(&folder).unwrap(), 5);
    }

    #[test]
    fn a_failed_append_leaves_nothing_behind() {
        let (_scratch, folder) = filled(2);
        let mut spool = Spool::open(&folder).unwrap();
        // A read-only handle in place of the log: the write fails.
        spool.logs[0].file = File::open(folder.join("0.log")).unwrap();
        assert!(spool.append(2, &[b"lost"]).is_err());
        assert!(!spool.contains(2));
        drop(spool);
        assert_eq!(records_in(&folder).unwrap(), 2);
    }
}
