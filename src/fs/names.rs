//! File names: what a URL (or an explicit name from the input) becomes on disk, and
//! the reservation that keeps two jobs of a batch from ever writing the same file.
//!
//! Everything that turns untrusted text into a name goes through [`sanitise`], so the
//! guarantees hold for every source alike: no path separators, no control characters,
//! never `.` or `..`, never empty, and short enough that `NAME-123.part` still fits in
//! a 255-byte file name. A name that passed through here cannot leave the folder.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use url::Url;

use super::fingerprints::FingerprintMap;

/// Longest name we hand out. Linux allows 255 bytes; the rest is room for a
/// collision suffix (`-9999`) and the `.part` ending of the file being written.
pub const MAX_NAME_BYTES: usize = 240;

/// The suffix of a file still being written.
pub const PART_SUFFIX: &str = ".part";

/// Characters that change how a name reads without being control characters:
/// bidirectional overrides and isolates (`photo\u{202E}gpj.exe` shows as
/// `photoexe.jpg`), and line and paragraph separators that split a listing.
fn misleads(character: char) -> bool {
    matches!(
        character,
        '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
    )
}

/// Characters Windows refuses in a name. Refused on every system, so a folder
/// made on Linux or macOS copies to Windows whole.
const WINDOWS_REFUSES: [char; 7] = ['<', '>', ':', '"', '|', '?', '*'];

/// Device names Windows reserves whatever their extension (`CON.txt` is the
/// console): such a name gets a `_` in front. The ports are `COM0` to `COM9`
/// and `LPT0` to `LPT9`, and with a superscript one, two or three too.
fn is_reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    let port = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"))
        .is_some_and(|number| {
            let mut characters = number.chars();
            matches!(
                (characters.next(), characters.next()),
                (Some('0'..='9' | '\u{b9}' | '\u{b2}' | '\u{b3}'), None)
            )
        });
    port || matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    )
}

/// Makes untrusted text safe to use as one file name inside the output folder, or
/// `None` when nothing usable is left. The name is one every common system
/// accepts: no separator, control character or character Windows refuses,
/// no reserved device name, nothing that ends in a dot or a space.
pub fn sanitise(raw: &str) -> Option<String> {
    let name: String = raw
        .chars()
        .map(|character| match character {
            '/' | '\\' => '_',
            character if character.is_control() || misleads(character) => '_',
            character if WINDOWS_REFUSES.contains(&character) => '_',
            character => character,
        })
        .collect();
    // Leading dots would hide the file (and `..` is the classic escape); trailing dots
    // and spaces are invisible in most listings.
    let name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if name.is_empty() {
        return None;
    }
    let name = match is_reserved_on_windows(name) {
        true => format!("_{name}"),
        false => name.to_string(),
    };
    // Cutting to length can leave a dot or a space at the end again.
    let name = truncate(&name, MAX_NAME_BYTES);
    let name = name.trim_end_matches(['.', ' ']);
    (!name.is_empty()).then(|| name.to_string())
}

/// Shortens a name to at most `limit` bytes on a character boundary, keeping its
/// extension when it has a short one.
fn truncate(name: &str, limit: usize) -> String {
    if name.len() <= limit {
        return name.to_string();
    }
    let (stem, extension) = split_extension(name);
    let extension = if extension.len() <= 16 { extension } else { "" };
    let mut end = limit - extension.len();
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &stem[..end], extension)
}

/// Splits `photo.tar.gz` into (`photo.tar`, `.gz`); a name without a dot (or with
/// only a leading one) has an empty extension.
pub fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(position) if position > 0 => name.split_at(position),
        _ => (name, ""),
    }
}

/// The stem of the name of a URL ending in `/`: `index.html` for a page, else
/// `index` with the Content-Type's extension.
pub const INDEX_NAME: &str = "index";

/// The extension of an index whose Content-Type names none (or no known one):
/// wget's `index.html`.
const INDEX_EXTENSION: &str = ".html";

/// The name a URL asks for: the last segment of its path, percent-decoded and
/// sanitised, or [`INDEX_NAME`] for a URL ending in `/`. The query and fragment
/// never take part. `None` when the path gives nothing usable (`/%20`).
pub fn name_from_url(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.next_back()?;
    if segment.is_empty() {
        // A folder's URL (`https://h/` or `https://h/docs/`) names its index, as wget.
        return Some(INDEX_NAME.to_string());
    }
    let decoded = percent_decode_str(segment).decode_utf8_lossy();
    sanitise(&decoded)
}

/// A stable name for a URL whose path gives none: a short hash of the URL, the
/// same on every run and machine.
pub fn hashed_name(url: &Url) -> String {
    let digest = Sha256::digest(url.as_str().as_bytes());
    digest[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A 128-bit fingerprint of a text (a URL, a name): enough to tell millions
/// apart, in a sixth of the memory of the text.
pub fn fingerprint(text: &str) -> u128 {
    let digest = Sha256::digest(text.as_bytes());
    u128::from_le_bytes(
        digest[..16]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// The file name a `Content-Disposition` header suggests, `filename*` (RFC 6266 /
/// RFC 5987: `charset'language'percent-encoded`) preferred over `filename`. A
/// name with folders (`../../a.txt`, `C:\\dir\\a.txt`) gives its last part, as
/// curl and wget take it (RFC 6266 says to drop the folders); not yet sanitised.
pub fn disposition_filename(header: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for parameter in split_parameters(header).into_iter().skip(1) {
        let Some((key, value)) = parameter.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if key == "filename*" {
            extended = decode_extended(value);
        } else if key == "filename" {
            plain = Some(unquote(value));
        }
    }
    let name = extended.or(plain)?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    (!last.is_empty()).then(|| last.to_string())
}

/// Splits a header at `;` outside double quotes.
fn split_parameters(header: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for character in header.chars() {
        let current = parts.last_mut().expect("never empty");
        match character {
            _ if escaped => {
                current.push(character);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(character);
                escaped = true;
            }
            '"' => {
                current.push(character);
                quoted = !quoted;
            }
            ';' if !quoted => parts.push(String::new()),
            _ => current.push(character),
        }
    }
    parts
}

fn unquote(value: &str) -> String {
    match value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut text = String::new();
            let mut characters = inner.chars();
            while let Some(character) = characters.next() {
                if character == '\\' {
                    text.extend(characters.next());
                } else {
                    text.push(character);
                }
            }
            text
        }
        None => value.to_string(),
    }
}

/// `UTF-8''%e2%82%ac.txt` and `ISO-8859-1'en'%A3.txt`.
fn decode_extended(value: &str) -> Option<String> {
    let mut pieces = value.splitn(3, '\'');
    let charset = pieces.next()?.to_ascii_lowercase();
    let _language = pieces.next()?;
    let encoded = pieces.next()?;
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    match charset.as_str() {
        "utf-8" => String::from_utf8(bytes).ok(),
        // Latin-1 bytes are the first 256 code points.
        "iso-8859-1" => Some(bytes.into_iter().map(char::from).collect()),
        _ => None,
    }
}

/// The final name for a download, before collision handling: the name chosen in
/// the input if any, else the server's (Content-Disposition, when asked for), else
/// the URL's; an extension from the Content-Type when the name has none; the URL's
/// hash when nothing else is usable.
pub fn desired_name(url: &Url, explicit: Option<&str>, content_type: Option<&str>) -> String {
    desired_name_with(url, explicit, None, content_type)
}

/// [`desired_name`], with the server's suggested name (from Content-Disposition).
pub fn desired_name_with(
    url: &Url,
    explicit: Option<&str>,
    suggested: Option<&str>,
    content_type: Option<&str>,
) -> String {
    if let Some(name) = explicit.and_then(sanitise) {
        return name;
    }
    let suggested = suggested.and_then(sanitise);
    let index = suggested.is_none() && url.path().ends_with('/');
    let base = suggested
        .or_else(|| name_from_url(url))
        .unwrap_or_else(|| hashed_name(url));
    let (_, extension) = split_extension(&base);
    if !extension.is_empty() {
        return base;
    }
    let extension = content_type
        .and_then(crate::image::mime::extension_for_content_type)
        .or(index.then_some(INDEX_EXTENSION));
    match extension {
        Some(extension) => truncate(&format!("{base}{extension}"), MAX_NAME_BYTES),
        None => base,
    }
}

/// A name's folders (with their last `/`), its file's stem and extension:
/// the pieces [`numbered`] puts a number between and [`unnumbered`] takes it
/// from.
fn folders_stem_extension(name: &str) -> (&str, &str, &str) {
    let (folders, file) = match name.rsplit_once('/') {
        Some((folders, file)) => (&name[..=folders.len()], file),
        None => ("", name),
    };
    let (stem, extension) = split_extension(file);
    (folders, stem, extension)
}

/// The `n`-th alternative to a taken name: `photo.jpg` gives `photo-1.jpg`, ...
/// In a subfolder (see [`super::layout`]) only the file's own name is numbered:
/// `a.b/photo.jpg` gives `a.b/photo-1.jpg`, in the same folder.
pub fn numbered(name: &str, n: u64) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (folders, stem, extension) = folders_stem_extension(name);
    format!("{folders}{stem}-{n}{extension}")
}

/// Hands out names that no other job of the batch holds and no file in the folder
/// has. Every strategy asks the one registry of the batch (the worker processes ask
/// it through their pipe), so reservation is decided in one place, under one lock.
pub trait NameRegistry: Send + Sync {
    /// Reserves a name for `desired`. With a `rank` (the job's place, in input
    /// order, among the batch's jobs sharing its base name), the name is the
    /// rank-th free numbered alternative, whenever the job's response arrives;
    /// without one, or when that name was taken meanwhile, the first free one.
    fn reserve(&self, desired: &str, rank: Option<u64>) -> io::Result<String>;
    /// Gives back a name whose download failed, for another job to use.
    fn release(&self, name: &str);
    /// Marks a known name as this batch's (a file being resumed or replaced, or one
    /// already complete), so no other job is handed it.
    fn claim(&self, name: &str);
}

/// The registry of one output folder, shared by every job of a batch.
pub struct FolderNames {
    directory: PathBuf,
    names: Mutex<Names>,
    /// The folder's entries when the run began, for a folder the run holds
    /// alone (see [`FolderNames::listed`]): a name is then looked up here, not
    /// on the disk. `None`: every look is a `stat`.
    listing: Option<HashSet<String>>,
}

/// The most entries [`FolderNames::listed`] keeps in memory: about 4 MiB of
/// names. A bigger folder is looked at name by name.
pub const MAX_LISTED_ENTRIES: usize = 100_000;

/// How a held name was handed out, packed in a `u64` so a million names
/// cost 24 bytes each with their fingerprint: the number in the high bits,
/// and whether it was handed out for a rank (then the number stays that
/// rank's when given back). [`CLAIMED`] for a name claimed as is.
type Held = u64;

/// A name marked as the batch's without a number (see [`NameRegistry::claim`]).
const CLAIMED: Held = u64::MAX;

fn held(n: u64, ranked: bool) -> Held {
    (n << 1) | u64::from(ranked)
}

/// (number, ranked) of a name handed out by number.
fn numbering(held: Held) -> Option<(u64, bool)> {
    (held != CLAIMED).then_some((held >> 1, held & 1 == 1))
}

/// The numbers of a desired name's ranks 0, 1, 2, ...: `dense` ranks numbered
/// 0, 1, ... `dense - 1`, then `extra`'s (once a name in the folder was skipped).
#[derive(Default)]
struct Slots {
    dense: u64,
    extra: Vec<u64>,
}

impl Slots {
    fn len(&self) -> u64 {
        self.dense + self.extra.len() as u64
    }

    fn get(&self, rank: u64) -> u64 {
        match rank < self.dense {
            true => rank,
            false => self.extra[(rank - self.dense) as usize],
        }
    }

    fn last(&self) -> Option<u64> {
        self.extra
            .last()
            .copied()
            .or_else(|| self.dense.checked_sub(1))
    }

    fn push(&mut self, n: u64) {
        if self.extra.is_empty() && n == self.dense {
            self.dense += 1;
        } else {
            self.extra.push(n);
        }
    }
}

/// The names a batch holds, and where each desired name's numbering goes on, so
/// that the N-th URL wanting `x.jpg` costs one look, not N: a run of 100,000
/// URLs all named `dl` is linear. Names are kept by their 128-bit
/// [`fingerprint`], not as text: a list of a million distinct names holds
/// some 24 bytes each here, not a few hundred.
#[derive(Default)]
struct Names {
    /// Every name held, with how it was numbered.
    taken: FingerprintMap<u128, Held>,
    /// Per desired name whose ranks' numbers are more than `[0]`: how many
    /// ranks are decided, when their numbers are 0, 1, 2, ... The common
    /// desired name of one URL, rank 0 numbered 0, is stored nowhere: its
    /// own ranked hold of number 0 says so (see [`Names::slots_of`]).
    counts: FingerprintMap<u128, u64>,
    /// Per desired name whose ranks skipped a name already in the folder:
    /// every rank's number. Decided once per rank, so the order responses
    /// arrive in does not change them.
    skipping: HashMap<u128, Slots>,
    /// Per desired name: the next number to try for a job without a rank.
    next: HashMap<u128, u64>,
    /// Per desired name: numbers given back by failed downloads, lowest first.
    freed: HashMap<u128, BTreeSet<u64>>,
}

impl Names {
    fn holds(&self, name: &str) -> bool {
        self.taken.contains(&fingerprint(name))
    }

    /// Whether `name` is held, or would share a part file with a name held:
    /// `x` writes `x.part`, so `x.part` and `x` exclude each other.
    fn clashes(&self, name: &str) -> bool {
        self.holds(name)
            || self.holds(&format!("{name}{PART_SUFFIX}"))
            || name
                .strip_suffix(PART_SUFFIX)
                .is_some_and(|stem| self.holds(stem))
    }

    /// The ranks of `desired` decided so far, taken out of the tables (put
    /// back with [`Names::store_slots`]). A desired name with no entry has
    /// rank 0 decided as number 0 exactly when that name is held for a rank
    /// with number 0: only rank 0 can be numbered 0. Given back (its download
    /// failed), the number is decided again the same way, to the same 0 (the
    /// name is free again, and the run holds the folder alone).
    fn slots_of(&mut self, key: u128, desired: &str) -> Slots {
        if let Some(slots) = self.skipping.remove(&key) {
            return slots;
        }
        if let Some(dense) = self.counts.get(&key) {
            return Slots {
                dense,
                extra: Vec::new(),
            };
        }
        let rank_zero = self.taken.get(&fingerprint(desired)) == Some(held(0, true));
        Slots {
            dense: u64::from(rank_zero),
            extra: Vec::new(),
        }
    }

    fn store_slots(&mut self, key: u128, slots: Slots) {
        if !slots.extra.is_empty() {
            self.counts.remove(&key);
            self.skipping.insert(key, slots);
        } else if slots.dense >= 2 {
            self.counts.set(key, slots.dense);
        }
    }
}

/// The desired name `name` was numbered `n` from: [`numbered`] undone. Exact,
/// as the number goes between the stem and the extension, which has no `-`.
fn unnumbered(name: &str, n: u64) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (folders, stem, extension) = folders_stem_extension(name);
    let stem = stem.strip_suffix(&format!("-{n}")).unwrap_or(stem);
    format!("{folders}{stem}{extension}")
}

impl FolderNames {
    /// Looks at the folder for each name: for a folder other runs may write
    /// to meanwhile (queue workers share theirs).
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        FolderNames {
            directory: directory.into(),
            names: Mutex::new(Names::default()),
            listing: None,
        }
    }

    /// For a folder this run holds alone (its lock taken exclusive): its
    /// entries are read once, so the two `stat`s per new name (the name and
    /// its `.part`), a fifth of a small file's system time, become lookups.
    /// Only the folder's own entries: a name in a subfolder (`-x`,
    /// `--spread`) is looked at on the disk, as is every name of a folder of
    /// more than [`MAX_LISTED_ENTRIES`]. Something another program puts in
    /// the folder during the run is not seen here, and is still never
    /// replaced: the part is created exclusively and renamed without
    /// replacing, so that download fails, naming the path.
    pub fn listed(directory: impl Into<PathBuf>) -> Self {
        let directory = directory.into();
        let listing = list(&directory, MAX_LISTED_ENTRIES);
        FolderNames {
            listing,
            ..FolderNames::new(directory)
        }
    }

    /// Whether anything, even a dangling symlink, sits at this name or its `.part`
    /// (or, for a `.part` name, at the name it is the part of).
    fn occupied(&self, name: &str) -> bool {
        let exists = |name: &str| match &self.listing {
            Some(listing) if !name.contains('/') => listing.contains(name),
            _ => self.directory.join(name).symlink_metadata().is_ok(),
        };
        exists(name)
            || exists(&format!("{name}{PART_SUFFIX}"))
            || name.strip_suffix(PART_SUFFIX).is_some_and(exists)
    }

    fn free(&self, names: &Names, name: &str) -> bool {
        !names.clashes(name) && !self.occupied(name)
    }

    /// The number of `rank` for `desired`. Ranks below it are decided on the way:
    /// each number is looked at once, whichever rank's response comes first, and
    /// the only names skipped are those in the folder before the batch (the
    /// batch's own names for `desired` are in the table already). True with the
    /// number when it was decided by this call, and so found free just now: the
    /// caller need not look at the folder again.
    fn slot(&self, names: &mut Names, desired: &str, rank: u64) -> (u64, bool) {
        let key = fingerprint(desired);
        let mut slots = names.slots_of(key, desired);
        let checked = slots.len() <= rank;
        while slots.len() <= rank {
            let mut n = slots.last().map_or(0, |last| last + 1);
            while !self.free(names, &numbered(desired, n)) {
                n += 1;
            }
            slots.push(n);
        }
        let n = slots.get(rank);
        names.store_slots(key, slots);
        (n, checked)
    }

    /// The first free number for `desired`, a number a failed download gave back
    /// first, so names stay dense.
    fn first_free(&self, names: &mut Names, desired: &str) -> u64 {
        let key = fingerprint(desired);
        let freed: Vec<u64> = names
            .freed
            .get(&key)
            .map(|freed| freed.iter().copied().collect())
            .unwrap_or_default();
        let reused = freed
            .into_iter()
            .find(|&n| self.free(names, &numbered(desired, n)));
        let n = match reused {
            Some(n) => n,
            None => {
                // Past the numbers ranks hold, so as not to take a later one's.
                let slots = names.slots_of(key, desired);
                let after_ranks = slots.last().map_or(0, |last| last + 1);
                names.store_slots(key, slots);
                let mut n = names.next.get(&key).copied().unwrap_or(0).max(after_ranks);
                while !self.free(names, &numbered(desired, n)) {
                    n += 1;
                }
                names.next.insert(key, n + 1);
                n
            }
        };
        if let Some(freed) = names.freed.get_mut(&key) {
            freed.remove(&n);
        }
        n
    }
}

/// The names in `directory`, or `None` when it has more than `limit` or cannot
/// be read (a folder not made yet has none). Names that are not UTF-8 are left
/// out: no name grab makes can equal one.
fn list(directory: &std::path::Path, limit: usize) -> Option<HashSet<String>> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Some(HashSet::new()),
        Err(_) => return None,
    };
    let mut names = HashSet::new();
    for entry in entries {
        if names.len() == limit {
            return None;
        }
        if let Ok(name) = entry.ok()?.file_name().into_string() {
            names.insert(name);
        }
    }
    Some(names)
}

impl NameRegistry for FolderNames {
    fn reserve(&self, desired: &str, rank: Option<u64>) -> io::Result<String> {
        let mut names = crate::lock(&self.names);
        let ranked = rank.and_then(|rank| {
            let (n, checked) = self.slot(&mut names, desired, rank);
            (checked || self.free(&names, &numbered(desired, n))).then_some(n)
        });
        let n = match ranked {
            Some(n) => n,
            // Another desired name reached this one (`img` served as PNG and a
            // URL ending in `img.png`): the first come takes it.
            None => self.first_free(&mut names, desired),
        };
        let name = numbered(desired, n);
        names
            .taken
            .set(fingerprint(&name), held(n, ranked.is_some()));
        Ok(name)
    }

    fn release(&self, name: &str) {
        let mut names = crate::lock(&self.names);
        let Some(held) = names.taken.remove(&fingerprint(name)) else {
            return;
        };
        if let Some((n, false)) = numbering(held) {
            let desired = fingerprint(&unnumbered(name, n));
            names.freed.entry(desired).or_default().insert(n);
        }
    }

    fn claim(&self, name: &str) {
        crate::lock(&self.names)
            .taken
            .set(fingerprint(name), CLAIMED);
    }
}

#[cfg(test)]
mod properties {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    /// What every name must be, whatever it came from.
    fn assert_safe(name: &str) {
        assert!(!name.is_empty());
        assert!(name != "." && name != "..");
        assert!(!name.starts_with('.'), "{name:?}");
        assert!(
            !name.contains('/') && !name.contains('\\') && !name.contains('\0'),
            "{name:?}"
        );
        assert!(!name.chars().any(char::is_control), "{name:?}");
        // Windows accepts it too: a folder made here copies there whole.
        assert!(!name.contains(WINDOWS_REFUSES), "{name:?}");
        assert!(!is_reserved_on_windows(name), "{name:?}");
        assert!(!name.ends_with(['.', ' ']), "{name:?}");
        assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
        let directory = Path::new("/output");
        let joined = directory.join(name);
        assert_eq!(
            joined.parent(),
            Some(directory),
            "{name:?} leaves the folder"
        );
    }

    /// Text rich in the characters that cause trouble.
    fn hostile_text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "..",
            ".",
            "/",
            "\\",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "%00",
            "%0a",
            "\0",
            "\n",
            "\u{202e}",
            "é",
            " ",
            "a",
            "b.jpg",
            "~",
            "%",
            "<",
            ":",
            "|",
            "?",
            "*",
            "\"",
            "CON",
            "com1",
            "LPT\u{b2}",
            "nul.",
        ]);
        prop::collection::vec(
            prop_oneof![pieces.prop_map(str::to_string), any::<String>()],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn url_paths_never_escape(path in hostile_text(), content_type in prop::option::of("[a-z]{1,8}/[a-z+.-]{1,12}")) {
            let encoded: String = percent_encoding::utf8_percent_encode(&path, percent_encoding::CONTROLS).collect();
            if let Ok(url) = Url::parse(&format!("http://host/dir/{encoded}")) {
                assert_safe(&desired_name_with(&url, None, None, content_type.as_deref()));
            }
        }

        #[test]
        fn header_and_explicit_names_never_escape(value in hostile_text(), explicit in prop::option::of(hostile_text())) {
            let url = Url::parse("http://host/").unwrap();
            let header = format!("attachment; filename=\"{value}\"; filename*=UTF-8''{value}");
            let suggested = disposition_filename(&header);
            assert_safe(&desired_name_with(&url, explicit.as_deref(), suggested.as_deref(), Some("image/png")));
        }

        #[test]
        fn numbered_alternatives_stay_safe(value in hostile_text(), n in 0u64..100_000) {
            if let Some(name) = sanitise(&value) {
                let alternative = numbered(&name, n);
                assert!(!alternative.contains('/') && !alternative.starts_with('.'));
                assert!(format!("{alternative}{PART_SUFFIX}").len() <= 255);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn last_segment_without_query() {
        let name = desired_name(
            &url("https://example.com/images/image1.jpg?w=800"),
            None,
            None,
        );
        assert_eq!(name, "image1.jpg");
    }

    #[test]
    fn percent_decoded() {
        assert_eq!(
            name_from_url(&url("http://h/a/my%20photo.png")).unwrap(),
            "my photo.png"
        );
    }

    #[test]
    fn encoded_traversal_cannot_escape() {
        for text in [
            "http://h/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "http://h/a/..%2F..%2Fx",
            "http://h/%2e%2e",
            "http://h/..%5c..%5cx",
        ] {
            let name = desired_name(&url(text), None, None);
            assert!(
                !name.contains('/') && !name.contains('\\'),
                "{text} gave {name}"
            );
            assert!(name != "." && name != "..", "{text} gave {name}");
            assert!(!name.starts_with('.'), "{text} gave {name}");
        }
    }

    #[test]
    fn no_usable_segment_gets_hash_and_content_type_extension() {
        let first = desired_name(&url("https://example.com/%20"), None, Some("image/png"));
        let again = desired_name(&url("https://example.com/%20"), None, Some("image/png"));
        assert_eq!(first, again);
        assert!(first.ends_with(".png"));
        assert_eq!(first.len(), 12 + 4);
        let other = desired_name(&url("https://example.org/%20"), None, Some("image/png"));
        assert_ne!(first, other);
    }

    #[test]
    fn a_folder_url_is_saved_as_its_index() {
        let html = Some("text/html; charset=utf-8");
        assert_eq!(desired_name(&url("https://h/"), None, html), "index.html");
        assert_eq!(
            desired_name(&url("https://h/docs/?q=1"), None, html),
            "index.html"
        );
        // Another type gives its own extension; none, or one unknown, wget's.
        assert_eq!(
            desired_name(&url("https://h/a/"), None, Some("image/png")),
            "index.png"
        );
        assert_eq!(desired_name(&url("https://h/a/"), None, None), "index.html");
        assert_eq!(
            desired_name(&url("https://h/a/"), None, Some("x/y")),
            "index.html"
        );
        // A name the input or the server gives wins.
        assert_eq!(
            desired_name(&url("https://h/a/"), Some("a.txt"), html),
            "a.txt"
        );
        let suggested = desired_name_with(&url("https://h/a/"), None, Some("report"), None);
        assert_eq!(suggested, "report");
    }

    #[test]
    fn missing_extension_comes_from_content_type() {
        let name = desired_name(
            &url("http://h/avatar?id=3"),
            None,
            Some("image/jpeg; charset=binary"),
        );
        assert_eq!(name, "avatar.jpg");
        assert_eq!(
            desired_name(&url("http://h/avatar"), None, Some("weird/type")),
            "avatar"
        );
    }

    #[test]
    fn explicit_name_wins_and_is_sanitised() {
        assert_eq!(
            desired_name(&url("http://h/a.jpg"), Some("cat.jpg"), None),
            "cat.jpg"
        );
        assert_eq!(
            desired_name(&url("http://h/a.jpg"), Some("../../cat.jpg"), None),
            "_.._cat.jpg"
        );
        // An explicit name that sanitises to nothing falls back to the URL's.
        assert_eq!(
            desired_name(&url("http://h/a.jpg"), Some(".."), None),
            "a.jpg"
        );
    }

    #[test]
    fn control_characters_and_nul_replaced() {
        assert_eq!(sanitise("a\u{0}b\nc.jpg").unwrap(), "a_b_c.jpg");
        // What Windows refuses is refused everywhere.
        assert_eq!(
            sanitise("a<b>c:d\"e|f?g*h.jpg").unwrap(),
            "a_b_c_d_e_f_g_h.jpg"
        );
        for reserved in [
            "CON",
            "con.txt",
            "NUL.tar.gz",
            "COM1.jpg",
            "lpt9",
            "LPT0",
            "com\u{b9}.txt",
            "COM\u{b3}",
            "AUX .txt",
        ] {
            assert!(sanitise(reserved).unwrap().starts_with('_'), "{reserved}");
        }
        for fine in [
            "CONSOLE.txt",
            "COM10.jpg",
            "COM\u{b9}0",
            "LPT\u{2074}",
            "icon.png",
            "nullable",
        ] {
            assert_eq!(sanitise(fine).unwrap(), fine);
        }
        assert_eq!(sanitise("name. . ").unwrap(), "name");
        for nothing_left in [".", "..", "", " . "] {
            assert_eq!(sanitise(nothing_left), None, "{nothing_left:?}");
        }
    }

    #[test]
    fn long_names_truncated_on_char_boundary_keeping_extension() {
        let long = format!("{}.jpg", "é".repeat(300));
        let name = sanitise(&long).unwrap();
        assert!(name.len() <= MAX_NAME_BYTES);
        assert!(name.ends_with(".jpg"));
        let with_suffix = format!("{}{}", numbered(&name, 9999), PART_SUFFIX);
        assert!(with_suffix.len() <= 255);
    }

    #[test]
    fn content_disposition_prefers_extended_filename() {
        let header =
            "attachment; filename=\"fallback.jpg\"; filename*=UTF-8''%E2%82%AC%20rates.jpg";
        assert_eq!(disposition_filename(header).unwrap(), "€ rates.jpg");
        assert_eq!(
            disposition_filename("attachment; filename=\"a;b \\\"q\\\".png\"").unwrap(),
            "a;b \"q\".png"
        );
        assert_eq!(
            disposition_filename("inline; filename=plain.gif").unwrap(),
            "plain.gif"
        );
        assert_eq!(
            disposition_filename("attachment; filename*=ISO-8859-1'en'%A3.txt").unwrap(),
            "£.txt"
        );
        assert_eq!(disposition_filename("attachment"), None);
    }

    #[test]
    fn a_disposition_name_with_folders_gives_its_last_part() {
        for (header, expected) in [
            (
                "attachment; filename=\"../../evil name.txt\"",
                Some("evil name.txt"),
            ),
            ("attachment; filename=\"/etc/passwd\"", Some("passwd")),
            (
                "attachment; filename=\"..\\\\..\\\\windows.bin\"",
                Some("windows.bin"),
            ),
            (
                "attachment; filename*=UTF-8''..%2F..%2Fencoded.bin",
                Some("encoded.bin"),
            ),
            ("attachment; filename*=UTF-8''a%5Cb%2Fc.txt", Some("c.txt")),
            ("attachment; filename=\"folder/\"", None),
        ] {
            assert_eq!(
                disposition_filename(header).as_deref(),
                expected,
                "{header}"
            );
        }
        // What is left is still sanitised: `..` alone gives the URL's name.
        let dots = disposition_filename("attachment; filename=\"a/..\"").unwrap();
        let name = desired_name_with(&url("http://h/x.jpg"), None, Some(&dots), None);
        assert_eq!(name, "x.jpg");
    }

    #[test]
    fn numbered_alternatives() {
        assert_eq!(numbered("photo.jpg", 0), "photo.jpg");
        assert_eq!(numbered("photo.jpg", 2), "photo-2.jpg");
        assert_eq!(numbered("README", 1), "README-1");
        assert_eq!(numbered("archive.tar.gz", 1), "archive.tar-1.gz");
        assert_eq!(numbered("h:80/a.b/photo.jpg", 1), "h:80/a.b/photo-1.jpg");
        assert_eq!(numbered("a.b/README", 2), "a.b/README-2");
    }

    #[test]
    fn registry_skips_taken_and_existing_names() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("a.jpg"), b"old").unwrap();
        let names = FolderNames::new(directory.path());
        assert_eq!(names.reserve("a.jpg", None).unwrap(), "a-1.jpg");
        assert_eq!(names.reserve("a.jpg", None).unwrap(), "a-2.jpg");
        names.release("a-1.jpg");
        assert_eq!(names.reserve("a.jpg", None).unwrap(), "a-1.jpg");
        assert_eq!(names.reserve("b.jpg", None).unwrap(), "b.jpg");
    }

    #[test]
    fn a_listed_folder_skips_what_was_in_it_and_its_subfolders_are_looked_at() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("a.jpg"), b"old").unwrap();
        std::fs::write(directory.path().join("b.jpg.part"), b"part").unwrap();
        std::fs::create_dir(directory.path().join("h")).unwrap();
        let names = FolderNames::listed(directory.path());
        assert!(names.listing.is_some());
        // Made after the listing, in a subfolder: seen, as subfolders are
        // looked at on the disk.
        std::fs::write(directory.path().join("h/c.jpg"), b"new").unwrap();
        assert_eq!(names.reserve("a.jpg", Some(0)).unwrap(), "a-1.jpg");
        assert_eq!(names.reserve("b.jpg", Some(0)).unwrap(), "b-1.jpg");
        assert_eq!(names.reserve("h/c.jpg", Some(0)).unwrap(), "h/c-1.jpg");
        assert_eq!(names.reserve("d.jpg", Some(0)).unwrap(), "d.jpg");
    }

    #[test]
    fn a_folder_past_the_listing_limit_is_not_listed() {
        let directory = tempfile::tempdir().unwrap();
        for index in 0..3 {
            std::fs::write(directory.path().join(format!("{index}")), b"").unwrap();
        }
        assert_eq!(list(directory.path(), 3).map(|names| names.len()), Some(3));
        assert_eq!(list(directory.path(), 2), None);
        let missing = directory.path().join("not-yet");
        assert_eq!(list(&missing, 2), Some(HashSet::new()));
    }

    #[test]
    fn alternatives_in_a_subfolder_stay_in_it() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(directory.path().join("h/a")).unwrap();
        std::fs::write(directory.path().join("h/a/c.jpg"), b"old").unwrap();
        let names = FolderNames::new(directory.path());
        assert_eq!(names.reserve("h/a/c.jpg", Some(0)).unwrap(), "h/a/c-1.jpg");
        assert_eq!(names.reserve("h/a/c.jpg", Some(1)).unwrap(), "h/a/c-2.jpg");
        // Another folder's `c.jpg` is another name.
        assert_eq!(names.reserve("h/b/c.jpg", Some(0)).unwrap(), "h/b/c.jpg");
        assert_eq!(names.reserve("c.jpg", None).unwrap(), "c.jpg");
    }

    #[test]
    fn a_hundred_thousand_urls_of_one_name_get_distinct_names() {
        let directory = tempfile::tempdir().unwrap();
        let names = FolderNames::new(directory.path());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(names.reserve("dl", None).unwrap()));
        }
        assert!(seen.contains("dl") && seen.contains("dl-99999"));
        // Past what any fixed cap would have allowed.
        assert_eq!(names.reserve("dl", None).unwrap(), "dl-100000");
    }

    #[test]
    fn ranks_decide_names_whatever_order_they_come_in() {
        let directory = tempfile::tempdir().unwrap();
        // A file from before the batch: rank 0 skips it, every time.
        std::fs::write(directory.path().join("a.jpg"), b"old").unwrap();
        let names = FolderNames::new(directory.path());
        assert_eq!(names.reserve("a.jpg", Some(2)).unwrap(), "a-3.jpg");
        assert_eq!(names.reserve("a.jpg", Some(0)).unwrap(), "a-1.jpg");
        // A failed rank's name stays its own: its retry gets it again.
        names.release("a-3.jpg");
        assert_eq!(names.reserve("a.jpg", None).unwrap(), "a-4.jpg");
        assert_eq!(names.reserve("a.jpg", Some(2)).unwrap(), "a-3.jpg");
        assert_eq!(names.reserve("a.jpg", Some(1)).unwrap(), "a-2.jpg");
        // Taken by another way of getting there since its number was decided:
        // the first free one past the ranks' instead.
        assert_eq!(names.reserve("c.png", Some(1)).unwrap(), "c-1.png");
        names.claim("c.png");
        assert_eq!(names.reserve("c.png", Some(0)).unwrap(), "c-2.png");
    }

    #[test]
    fn a_hundred_thousand_ranks_of_one_name_in_reverse_are_linear() {
        let directory = tempfile::tempdir().unwrap();
        let names = FolderNames::new(directory.path());
        for rank in (0..100_000u64).rev() {
            assert_eq!(
                names.reserve("dl", Some(rank)).unwrap(),
                numbered("dl", rank)
            );
        }
    }

    #[test]
    fn unnumbered_undoes_numbered() {
        for (desired, n) in [
            ("a.jpg", 0),
            ("a.jpg", 3),
            ("a-1.jpg", 1),
            ("README", 12),
            (".jpg", 2),
            ("archive.tar.gz", 1),
            ("h:80/a.b/photo-2.jpg", 2),
        ] {
            assert_eq!(
                unnumbered(&numbered(desired, n), n),
                desired,
                "{desired} {n}"
            );
        }
    }

    #[test]
    fn a_rank_zero_given_back_is_numbered_zero_again() {
        let directory = tempfile::tempdir().unwrap();
        let names = FolderNames::listed(directory.path());
        assert_eq!(names.reserve("x.jpg", Some(0)).unwrap(), "x.jpg");
        // Rank 0's number is known from its hold alone: rank 1 comes next.
        assert_eq!(names.reserve("x.jpg", Some(1)).unwrap(), "x-1.jpg");
        names.release("x.jpg");
        assert_eq!(names.reserve("x.jpg", Some(2)).unwrap(), "x-2.jpg");
        assert_eq!(names.reserve("x.jpg", Some(0)).unwrap(), "x.jpg");
        // Given back with no rank above it: decided again, the same.
        assert_eq!(names.reserve("y.jpg", Some(0)).unwrap(), "y.jpg");
        names.release("y.jpg");
        assert_eq!(names.reserve("y.jpg", Some(1)).unwrap(), "y-1.jpg");
        assert_eq!(names.reserve("y.jpg", Some(0)).unwrap(), "y.jpg");
    }

    #[test]
    fn a_name_and_its_part_never_clash() {
        let directory = tempfile::tempdir().unwrap();
        let names = FolderNames::new(directory.path());
        assert_eq!(names.reserve("a.bin", None).unwrap(), "a.bin");
        // `a.bin` writes `a.bin.part`: no other job may be handed that name.
        assert_eq!(names.reserve("a.bin.part", None).unwrap(), "a.bin-1.part");
        assert_eq!(names.reserve("b.bin.part", None).unwrap(), "b.bin.part");
        assert_eq!(names.reserve("b.bin", None).unwrap(), "b-1.bin");
        std::fs::write(directory.path().join("c.bin.part"), b"").unwrap();
        assert_eq!(names.reserve("c.bin", None).unwrap(), "c-1.bin");
        std::fs::write(directory.path().join("d.bin"), b"").unwrap();
        assert_eq!(names.reserve("d.bin.part", None).unwrap(), "d.bin-1.part");
    }

    #[test]
    fn bidirectional_and_line_separating_characters_are_cleaned() {
        assert_eq!(
            sanitise("photo\u{202E}gpj.exe").as_deref(),
            Some("photo_gpj.exe")
        );
        assert_eq!(
            sanitise("a\u{2028}b\u{2029}c\u{2066}d\u{200F}.jpg").as_deref(),
            Some("a_b_c_d_.jpg")
        );
    }
}
