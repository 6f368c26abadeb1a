//! Which byte ranges of a part file hold the server's bytes, for a download
//! fetched in pieces (`--split`): its pieces land at their offsets in any
//! order, so the part's length says nothing about what is complete. The record
//! sits beside the part as `NAME.part.ranges` (a small JSON object: the
//! validator the bytes belong to, the file's total, the complete ranges), is
//! replaced whole as pieces progress, and goes with the part, so a kill leaves
//! what `-c` and a retry need to resume each range where it stopped. A sidecar
//! rather than a trailer: the part stays the file's bytes at their offsets, and
//! a run without `--split` resumes its complete prefix as any part.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The suffix of a part's record, after the part's own name.
pub const RANGES_SUFFIX: &str = ".ranges";

/// What a part holds: for the version `validator` names, of `total` bytes,
/// the ranges `[start, end)` complete, sorted and apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    pub validator: String,
    pub total: u64,
    pub done: Vec<(u64, u64)>,
}

impl Ranges {
    pub fn new(validator: String, total: u64) -> Ranges {
        Ranges {
            validator,
            total,
            done: Vec::new(),
        }
    }

    /// Notes `[start, end)` complete, merged with its neighbours.
    pub fn add(&mut self, start: u64, end: u64) {
        let end = end.min(self.total);
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        self.done.retain(|&(done_start, done_end)| {
            let apart = done_end < start || done_start > end;
            if !apart {
                start = start.min(done_start);
                end = end.max(done_end);
            }
            apart
        });
        let at = self
            .done
            .partition_point(|&(done_start, _)| done_start < start);
        self.done.insert(at, (start, end));
    }

    /// The ranges still to fetch, in order.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let mut missing = Vec::new();
        let mut position = 0;
        for &(start, end) in &self.done {
            if start > position {
                missing.push((position, start));
            }
            position = position.max(end);
        }
        if position < self.total {
            missing.push((position, self.total));
        }
        missing
    }

    /// Bytes complete.
    pub fn complete(&self) -> u64 {
        self.done.iter().map(|(start, end)| end - start).sum()
    }

    /// Where the complete bytes from the first one stop: what a resume of
    /// the part as one stream may keep.
    pub fn prefix(&self) -> u64 {
        match self.done.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// Whether every byte is in.
    pub fn is_whole(&self) -> bool {
        self.done == [(0, self.total)] || self.total == 0
    }

    /// Where the record of the part at `part` is.
    pub fn path_for(part: &Path) -> PathBuf {
        let mut path = part.as_os_str().to_owned();
        path.push(RANGES_SUFFIX);
        PathBuf::from(path)
    }

    /// The record of the part at `part`, if one is there and reads whole
    /// (never through a symbolic link). A record that does not parse is none:
    /// the part then counts only as far as its resume offset says.
    pub fn load(part: &Path) -> Option<Ranges> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        let mut file = super::system::open_no_follow(&options, &Ranges::path_for(part)).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        let ranges: Ranges = serde_json::from_str(&text).ok()?;
        let sorted = ranges.done.windows(2).all(|pair| pair[0].1 < pair[1].0)
            && ranges
                .done
                .iter()
                .all(|&(start, end)| start < end && end <= ranges.total);
        sorted.then_some(ranges)
    }

    /// Replaces the record of the part at `part` whole (a temporary file
    /// renamed over it), so a kill leaves the old record or the new one.
    pub fn save(&self, part: &Path) -> io::Result<()> {
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
        super::atomic::write_atomically(&Ranges::path_for(part), &text, true)
    }

    /// Removes the record of the part at `part`, quietly: one that is not
    /// there is gone.
    pub fn remove(part: &Path) {
        let _ = std::fs::remove_file(Ranges::path_for(part));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_say_what_is_missing() {
        let mut ranges = Ranges::new("\"v1\"".to_string(), 100);
        assert_eq!(ranges.missing(), [(0, 100)]);
        ranges.add(10, 20);
        ranges.add(50, 60);
        ranges.add(20, 30);
        assert_eq!(ranges.done, [(10, 30), (50, 60)]);
        assert_eq!(ranges.missing(), [(0, 10), (30, 50), (60, 100)]);
        assert_eq!(ranges.prefix(), 0);
        ranges.add(0, 55);
        assert_eq!(ranges.done, [(0, 60)]);
        assert_eq!(ranges.prefix(), 60);
        assert_eq!(ranges.complete(), 60);
        assert!(!ranges.is_whole());
        ranges.add(60, 200);
        assert!(ranges.is_whole());
        assert!(ranges.missing().is_empty());
    }

    #[test]
    fn a_record_survives_a_save_and_a_bad_one_is_none() {
        let (_directory, part) = crate::fs::scratch_file("a.bin.part");
        assert_eq!(Ranges::load(&part), None);
        let mut ranges = Ranges::new("\"v1\"".to_string(), 100);
        ranges.add(40, 70);
        ranges.save(&part).unwrap();
        assert_eq!(Ranges::load(&part), Some(ranges));
        std::fs::write(
            Ranges::path_for(&part),
            br#"{"validator":"x","total":10,"done":[[5,20]]}"#,
        )
        .unwrap();
        assert_eq!(Ranges::load(&part), None, "a range past the end");
        Ranges::remove(&part);
        assert!(!Ranges::path_for(&part).exists());
    }
}
