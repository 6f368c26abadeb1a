//! `--split N`: one file fetched in ranges on up to N connections at once, as
//! aria2's `-s`/`-x`. The first response (the whole file, or the rest of a
//! part) says whether the server takes ranges with a validator; if so its
//! body is the first piece, and other connections ask for the rest with
//! `Range` and `If-Range`, from the job's URL and its mirrors in turn.
//!
//! The missing bytes are cut in advance into pieces in file order, in rounds
//! of one piece per connection, each round half of what is left (see
//! `plan`), down to pieces of `--min-split-size`. A free connection takes
//! the first piece nobody is on, with a new request on its kept-alive
//! connection; when none is left, it takes the second half of the largest
//! piece still being fetched, as aria2 does, while both halves stay at least
//! `--min-split-size`. Connections that run at one pace so finish each round
//! together, and the last together, while the complete prefix of the file
//! grows round by round: a [`PrefixHasher`] hashes it as it grows, so after
//! the last byte only the last round's pieces (bar one) are left to hash,
//! not the whole file. Bytes land at their offsets in the one part file,
//! whose record of complete ranges ([`crate::fs::ranges`]) lets `-c` and
//! retries resume each range; the file takes its name only whole.
//!
//! This module holds the rules, once: who fetches what, where bytes go, what
//! a failure costs. The drivers ([`super::blocking`]: threads;
//! [`super::asynchronous`]: futures of the task that owns the file) only
//! run the connections.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use super::digest::PrefixHasher;
use super::error::http_error;
use super::retry::retry_delay;
use super::task::HostPermit;
use super::transfer::{Head, PiecesStart, Transfer, parse_content_range};
use super::{Context, DownloadError};
use crate::fs::ranges::Ranges;
use crate::http::request::Job;

/// How often, at most, the record of complete ranges is replaced while bytes
/// arrive: a kill loses at most this much of the work (it is fetched again).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How often the drivers' keeper looks whether the record is due
/// ([`Pieces::keep_record`]). The keeper is woken when the last connection
/// ends, so the download never waits out a tick.
pub const KEEPER_TICK: Duration = Duration::from_millis(50);

/// A piece being fetched, or waiting for a connection: `[position, end)`
/// is still missing.
#[derive(Debug, Clone, Copy)]
struct Piece {
    position: u64,
    end: u64,
    busy: bool,
}

/// A piece a connection took: its index and the range to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    pub index: usize,
    pub start: u64,
    pub end: u64,
}

/// How far the complete prefix must have grown since the hasher was last
/// told before it is told again: it then reads spans of at least this much,
/// and is woken a few times a second rather than at every chunk.
const HASH_STEP: u64 = 1024 * 1024;

/// What a connection does after a chunk: reads on (after the pause the rate
/// limits ask for), or stops: its piece complete where its request asked
/// (`Done`: the response is over, and its connection may serve the next
/// request once its end is read), cut short by another connection taking its
/// second half (`Cut`: the rest of the response is not wanted), or the
/// download over (`Stop`).
#[derive(Debug)]
pub enum Step {
    More(Duration),
    Done,
    Cut,
    Stop,
}

struct State<'t, 'a> {
    transfer: &'t mut Transfer<'a>,
    pieces: Vec<Piece>,
    ranges: Ranges,
    saved_at: Instant,
    /// Whether bytes came in since the record was saved.
    dirty: bool,
    /// Per source: failed requests so far, and whether it is given up.
    failures: Vec<u32>,
    dead: Vec<bool>,
    /// The failure that ends the download (a full disk, every source gone,
    /// a limit).
    error: Option<DownloadError>,
    /// Where the complete prefix reached when the hasher was last told.
    hashable: u64,
}

/// One split download's pieces, shared by its connections.
pub struct Pieces<'t, 'a> {
    state: Mutex<State<'t, 'a>>,
    pub job: &'a Job,
    pub context: &'a Context,
    /// The job's URL, then its mirrors.
    sources: Vec<Url>,
    /// The source the first response came from.
    first_source: usize,
    validator: String,
    deadline: Option<Instant>,
    /// Where the first response's body begins.
    offset: u64,
    running: Connections,
    /// Hashes the part's complete prefix as it grows (`None` only for a
    /// transfer without a part, in tests).
    hasher: Option<PrefixHasher>,
}

/// How many connections are not yet over, and a signal when none is.
struct Connections {
    count: Mutex<usize>,
    over: Condvar,
}

/// Held by a running connection; its drop says it is over.
pub struct Running<'p>(&'p Connections);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut count = crate::lock(&self.0.count);
        *count -= 1;
        if *count == 0 {
            self.0.over.notify_all();
        }
    }
}

impl<'t, 'a> Pieces<'t, 'a> {
    /// The pieces still missing from `start`, for the download `transfer`
    /// (whose first response came from `url`, a source of `job`).
    pub fn new(
        transfer: &'t mut Transfer<'a>,
        start: PiecesStart,
        job: &'a Job,
        context: &'a Context,
        url: &Url,
    ) -> Self {
        let sources: Vec<Url> = (0..)
            .map_while(|index| job.source(index))
            .cloned()
            .collect();
        let first_source = sources.iter().position(|source| source == url).unwrap_or(0);
        let settings = &context.settings;
        let missing = start.ranges.missing();
        let connections = connections_for(&start.ranges, settings.split, settings.min_split_size);
        let pieces = plan(&missing, connections as u64, settings.min_split_size.max(1));
        tracing::debug!(
            pieces = pieces.len(),
            connections,
            "missing ranges cut in pieces"
        );
        let deadline = transfer.deadline();
        let hasher = transfer.prefix_hasher();
        let hashable = start.ranges.prefix();
        if let Some(hasher) = &hasher {
            hasher.advance(hashable);
        }
        Pieces {
            validator: start.ranges.validator.clone(),
            offset: start.offset,
            state: Mutex::new(State {
                transfer,
                pieces,
                ranges: start.ranges,
                saved_at: Instant::now(),
                dirty: false,
                failures: vec![0; sources.len()],
                dead: vec![false; sources.len()],
                error: None,
                hashable,
            }),
            job,
            context,
            sources,
            first_source,
            deadline,
            running: Connections {
                count: Mutex::new(0),
                over: Condvar::new(),
            },
            hasher,
        }
    }

    /// A connection begins: it holds the value returned until it is over.
    pub fn connection(&self) -> Running<'_> {
        *crate::lock(&self.running.count) += 1;
        Running(&self.running)
    }

    /// Saves the record of complete ranges if bytes came since it was saved
    /// last, at most every [`SAVE_EVERY`], for the drivers' keeper: a
    /// connection that stalls then writes nothing, and the bytes before the
    /// stall must still be on record before a kill. False once every
    /// connection is over: the keeper stops.
    pub fn keep_record(&self) -> bool {
        let mut guard = crate::lock(&self.state);
        let state = &mut *guard;
        if state.dirty && state.error.is_none() && state.saved_at.elapsed() >= SAVE_EVERY {
            state.saved_at = Instant::now();
            state.dirty = false;
            if let Err(error) = state.transfer.save_ranges(&state.ranges) {
                state.error = Some(error);
            }
        }
        self.running()
    }

    /// Whether any connection is not yet over.
    fn running(&self) -> bool {
        *crate::lock(&self.running.count) > 0
    }

    /// Blocks for up to `tick`, or until the last connection is over: the
    /// blocking driver's keeper sleeps here, so it ends with the download.
    pub fn wait_while_running(&self, tick: Duration) {
        let count = crate::lock(&self.running.count);
        if *count > 0 {
            let _ = self.running.over.wait_timeout(count, tick);
        }
    }

    /// How many connections to run: `--split`, but never more than pieces
    /// of `--min-split-size` fit in what is missing.
    pub fn connections(&self) -> usize {
        let state = crate::lock(&self.state);
        let settings = &self.context.settings;
        connections_for(&state.ranges, settings.split, settings.min_split_size)
    }

    /// The source the first response came from.
    pub fn first_source(&self) -> usize {
        self.first_source
    }

    /// The URL of source `index` (0: the job's URL, then its mirrors).
    pub fn source_url(&self, index: usize) -> &Url {
        &self.sources[index]
    }

    /// The piece the first response's body begins, taken by its connection.
    pub fn first(&self) -> Option<Claim> {
        let mut state = crate::lock(&self.state);
        let index = state
            .pieces
            .iter()
            .position(|piece| piece.position == self.offset && !piece.busy)?;
        let claim = take(&mut state.pieces, index);
        tracing::debug!(start = claim.start, end = claim.end, "first piece");
        Some(claim)
    }

    /// A piece for a connection that is free: the first in the file nobody
    /// is on (so the complete prefix grows), else the second half of the
    /// largest being fetched, if both halves stay at least
    /// `--min-split-size`. `None`: nothing left for it to do.
    pub fn claim(&self) -> Option<Claim> {
        let mut state = crate::lock(&self.state);
        if state.error.is_some() {
            return None;
        }
        if let Some((index, _)) = state
            .pieces
            .iter()
            .enumerate()
            .filter(|(_, piece)| !piece.busy && piece.position < piece.end)
            .min_by_key(|(_, piece)| piece.position)
        {
            return Some(take(&mut state.pieces, index));
        }
        let minimum = self.context.settings.min_split_size.max(1);
        let (index, left) = state
            .pieces
            .iter()
            .enumerate()
            .filter(|(_, piece)| piece.busy)
            .map(|(index, piece)| (index, piece.end - piece.position))
            .max_by_key(|&(_, left)| left)?;
        if left < 2 * minimum {
            return None;
        }
        let piece = &mut state.pieces[index];
        let middle = piece.position + left / 2;
        tracing::debug!(
            index,
            position = piece.position,
            end = piece.end,
            middle,
            "piece halved for a free connection"
        );
        let end = std::mem::replace(&mut piece.end, middle);
        state.pieces.push(Piece {
            position: middle,
            end,
            busy: true,
        });
        Some(Claim {
            index: state.pieces.len() - 1,
            start: middle,
            end,
        })
    }

    /// The source a connection asks, by its number among the download's
    /// connections: spread over those not given up. `None`: none is left.
    pub fn source(&self, connection: usize) -> Option<(usize, &Url)> {
        let state = crate::lock(&self.state);
        let live: Vec<usize> = (0..self.sources.len())
            .filter(|&index| !state.dead[index])
            .collect();
        let index = *live.get(connection % live.len().max(1))?;
        Some((index, &self.sources[index]))
    }

    /// The next piece for `connection`: the source it asks, the piece, and
    /// the request for it. `None`: no source left alive, or nothing left for
    /// the connection to do.
    pub fn next(&self, connection: usize) -> Option<(usize, Claim, Transfer<'a>)> {
        let (source, url) = self.source(connection)?;
        let claim = self.claim()?;
        let request = self.request(url, &claim);
        Some((source, claim, request))
    }

    /// The request for `claim` from `url`.
    pub fn request(&self, url: &Url, claim: &Claim) -> Transfer<'a> {
        Transfer::for_piece(
            self.job,
            self.context,
            url,
            (claim.start, claim.end),
            &self.validator,
            self.deadline,
        )
    }

    /// Whether a piece's response head is the range asked for, of the
    /// version the download holds: a 206 from where the piece starts with
    /// the same validator. A 200 is the whole file (ranges ignored, or
    /// another version): this source cannot serve pieces.
    pub fn check(&self, head: &Head, claim: &Claim) -> Result<(), DownloadError> {
        match head.status {
            206 => {}
            200 => return Err(DownloadError::RangeMismatch),
            status => return Err(http_error(status, head.retry_after.as_deref())),
        }
        let same_version = match self.validator.starts_with('"') {
            true => head.etag.as_deref() == Some(self.validator.as_str()),
            false => head.last_modified.as_deref() == Some(self.validator.as_str()),
        };
        let start = head
            .content_range
            .as_deref()
            .and_then(parse_content_range)
            .map(|(start, _)| start);
        match (start == Some(claim.start), same_version) {
            (true, true) => Ok(()),
            _ => Err(DownloadError::RangeMismatch),
        }
    }

    /// Bytes that arrived for `claim`: written at their place (those past
    /// the piece's end, which another connection took meanwhile, dropped),
    /// counted, and limited as the whole file's.
    pub fn write(&self, claim: &Claim, bytes: &[u8]) -> Step {
        let mut guard = crate::lock(&self.state);
        let state = &mut *guard;
        if state.error.is_some() {
            return Step::Stop;
        }
        let piece = state.pieces[claim.index];
        let count = (bytes.len() as u64).min(piece.end - piece.position);
        if let Err(error) = state
            .transfer
            .write_piece(piece.position, &bytes[..count as usize])
        {
            state.error = Some(error);
            return Step::Stop;
        }
        let position = piece.position + count;
        state.ranges.add(piece.position, position);
        state.pieces[claim.index].position = position;
        let done = position == piece.end;
        state.dirty = true;
        let prefix = state.ranges.prefix();
        if let Some(hasher) = &self.hasher
            && (prefix >= state.hashable + HASH_STEP || prefix == state.ranges.total)
        {
            state.hashable = prefix;
            hasher.advance(prefix);
        }
        if done {
            state.pieces[claim.index].busy = false;
        }
        if done || state.saved_at.elapsed() >= SAVE_EVERY {
            state.saved_at = Instant::now();
            state.dirty = false;
            if let Err(error) = state.transfer.save_ranges(&state.ranges) {
                state.error = Some(error);
                return Step::Stop;
            }
        }
        match (done, position == claim.end) {
            (true, true) => Step::Done,
            (true, false) => Step::Cut,
            (false, _) => Step::More(state.transfer.pause(count as usize)),
        }
    }

    /// A connection's request or body for `claim` from `source` failed:
    /// the rest of the piece waits for another connection; the source is
    /// given up after `--retries` failures (at once for one that does not
    /// serve this version's ranges), and the download fails when none is
    /// left or the failure is the whole file's (a full disk, a limit). How
    /// long the connection waits before its next request, or `None` when
    /// the download is over for it.
    pub fn failed(&self, claim: &Claim, source: usize, error: DownloadError) -> Option<Duration> {
        let mut guard = crate::lock(&self.state);
        let state = &mut *guard;
        state.pieces[claim.index].busy = false;
        tracing::debug!(url = %self.sources[source], start = claim.start, end = claim.end, %error, "piece failed");
        if state.error.is_some() {
            return None;
        }
        let whole_file = error.is_local()
            || matches!(
                error,
                DownloadError::MaxTime { .. } | DownloadError::TooSlow { .. }
            );
        if whole_file {
            state.error = Some(error);
            return None;
        }
        state.failures[source] += 1;
        let settings = &self.context.settings;
        let wait = match error {
            DownloadError::RangeMismatch => None,
            _ => retry_delay(settings, state.failures[source], &error),
        };
        if wait.is_none() {
            state.dead[source] = true;
            tracing::debug!(url = %self.sources[source], %error, "source given up for pieces");
        }
        if state.dead.iter().all(|&dead| dead) {
            state.error = Some(error);
            return None;
        }
        Some(wait.unwrap_or_default())
    }

    /// The connections are done: the part whole, or the error that ended
    /// the download (its part keeps the ranges in, for a resume).
    pub fn finish(self) -> Result<(), DownloadError> {
        let hasher = self.hasher;
        let State {
            transfer,
            ranges,
            error,
            ..
        } = self
            .state
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner());
        let ended = transfer.end_pieces(&ranges, hasher);
        match (error, ended) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) if ranges.is_whole() => Ok(()),
            // Every connection stopped with pieces left: only when each
            // was given back after a failure that did not end the download.
            (None, Ok(())) => Err(DownloadError::Truncated {
                received: ranges.complete(),
                expected: ranges.total,
            }),
        }
    }
}

/// The permit an extra connection of a split download holds for its host
/// under `--per-host`: `Some(None)` without a limit, `None` when the host
/// is at its limit (the download then runs on the connections it has; the
/// first holds the download's own permit). A connection that moves to
/// another source later, its own given up, keeps the permit it took.
pub fn host_permit(pieces: &Pieces, connection: usize) -> Option<Option<HostPermit>> {
    let Some(hosts) = &pieces.context.hosts else {
        return Some(None);
    };
    let (_, url) = pieces.source(connection)?;
    hosts.try_enter(url).map(Some)
}

/// A piece's body that ended before the piece did.
pub fn ended_early(claim: &Claim) -> DownloadError {
    DownloadError::Network(format!(
        "the body ended before the end of the range {}-{} it was asked for",
        claim.start,
        claim.end - 1
    ))
}

/// How many connections a download with `ranges` complete runs: `split`,
/// but never more than pieces of `min_split_size` fit in what is missing.
fn connections_for(ranges: &Ranges, split: usize, min_split_size: u64) -> usize {
    let missing = ranges.total - ranges.complete();
    let most = (missing / min_split_size.max(1)).max(1);
    split.min(most as usize).max(1)
}

/// The pieces `missing` (ranges in file order) is fetched in, in file
/// order: each range in rounds of `connections` equal pieces, each round
/// half of what the range has left, while pieces stay at least `minimum`;
/// then what is left in up to `connections` equal pieces of at least
/// `minimum` (or one piece, when less is left).
///
/// Why rounds: connections that run at one pace (the common case, a server
/// that caps each connection) finish the pieces of a round together and
/// take the next round's at once, so they also finish the last together,
/// and no connection idles at the end while another fetches a piece too
/// small to halve. Why halving rounds: the complete prefix grows at each
/// round's end, and the last round, whose pieces bar one are what remains
/// to hash after the last byte, is small; the first rounds hold most of the
/// file in few requests. 64 MiB on 8 connections with pieces of at least
/// 1 MiB: rounds of 4, 2, 1 and 1 MiB pieces, 32 requests, 7 MiB left to
/// hash at the end. A piece is never bigger than it was planned; the tail's
/// halving only makes pieces smaller.
fn plan(missing: &[(u64, u64)], connections: u64, minimum: u64) -> Vec<Piece> {
    let (connections, minimum) = (connections.max(1), minimum.max(1));
    let mut pieces = Vec::new();
    let mut push = |position: u64, size: u64| {
        pieces.push(Piece {
            position,
            end: position + size,
            busy: false,
        })
    };
    for &(start, end) in missing {
        let mut position = start;
        let mut left = end.saturating_sub(start);
        loop {
            let size = left / (2 * connections);
            if size < minimum {
                break;
            }
            for _ in 0..connections {
                push(position, size);
                position += size;
            }
            left -= size * connections;
        }
        let count = (left / minimum).clamp(1, connections);
        for index in 0..count {
            let size = left / count + u64::from(index < left % count);
            if size > 0 {
                push(position, size);
                position += size;
            }
        }
    }
    pieces
}

/// Marks piece `index` busy and says what to ask for.
fn take(pieces: &mut [Piece], index: usize) -> Claim {
    let piece = &mut pieces[index];
    piece.busy = true;
    Claim {
        index,
        start: piece.position,
        end: piece.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::names::FolderNames;
    use crate::http::Settings;
    use std::sync::Arc;

    fn context(split: usize, min_split_size: u64) -> Context {
        let directory = std::env::temp_dir();
        let mut settings = Settings::new(&directory);
        settings.split = split;
        settings.min_split_size = min_split_size;
        Context::new(settings, Arc::new(FolderNames::new(&directory)))
    }

    fn job() -> Job {
        let line = "http://127.0.0.1:1/a.bin";
        let (url, name) = crate::http::request::parse_line(line).unwrap().unwrap();
        Job {
            url,
            name,
            origin: crate::http::Origin {
                source: "test".into(),
                line: 1,
            },
            plan: None,
            rank: None,
            queued_at: Duration::ZERO,
            checksum: None,
            mirrors: vec![Url::parse("http://127.0.0.1:2/a.bin").unwrap()],
        }
    }

    /// The pieces of `pieces` as (start, end), in the order they sit.
    fn tiles(pieces: &Pieces) -> Vec<(u64, u64)> {
        crate::lock(&pieces.state)
            .pieces
            .iter()
            .map(|piece| (piece.position, piece.end))
            .collect()
    }

    #[test]
    fn pieces_go_in_file_order_then_free_connections_halve_the_largest() {
        let (job, context) = (job(), context(2, 10));
        let mut transfer = Transfer::new(&job, &context, None, &job.url);
        let start = PiecesStart {
            ranges: Ranges::new("\"v\"".into(), 100),
            offset: 0,
        };
        let pieces = Pieces::new(&mut transfer, start, &job, &context, &job.url);
        assert_eq!(pieces.connections(), 2);
        // Rounds of two pieces, each round half of what is left: 25s, 12s,
        // then the last 26 bytes in two of 13 (a round of 6s would be under
        // the minimum of 10).
        assert_eq!(
            tiles(&pieces),
            [(0, 25), (25, 50), (50, 62), (62, 74), (74, 87), (87, 100)]
        );
        let first = pieces.first().unwrap();
        assert_eq!((first.start, first.end), (0, 25));
        let mut claims = vec![first];
        for _ in 0..5 {
            claims.push(pieces.claim().unwrap());
        }
        let starts: Vec<u64> = claims.iter().map(|claim| claim.start).collect();
        assert_eq!(starts, [0, 25, 50, 62, 74, 87], "in file order");
        // None is left untaken: a free connection takes the second half of
        // the largest busy piece (the later of the two 25s, halved to 12 and
        // 13), then of the other; then no piece is worth halving.
        let half = pieces.claim().unwrap();
        assert_eq!((half.start, half.end), (37, 50));
        let half = pieces.claim().unwrap();
        assert_eq!((half.start, half.end), (12, 25));
        assert!(pieces.claim().is_none());
        assert_eq!(
            tiles(&pieces)[..2],
            [(0, 12), (25, 37)],
            "the halved pieces end where their second halves begin"
        );
        // A failed piece waits for the next free connection.
        let second = claims[1];
        assert!(
            pieces
                .failed(&second, 1, DownloadError::ConnectionReset)
                .is_some()
        );
        let again = pieces.claim().unwrap();
        assert_eq!(again.start, second.start);
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_plan_is_rounds_of_halves_down_to_the_minimum() {
        // The benchmark's file: 64 MiB, 8 connections, pieces of 1 MiB at
        // least: rounds of 4, 2, 1 and 1 MiB, 32 requests in all (the first
        // response's and 31 ranges), and 7 MiB after the last round's first
        // piece, what is left to hash when the last bytes come together.
        let pieces = plan(&[(0, 64 * MIB)], 8, MIB);
        let sizes: Vec<u64> = pieces
            .iter()
            .map(|piece| piece.end - piece.position)
            .collect();
        let rounds: Vec<u64> = sizes.chunks(8).map(|round| round[0] / MIB).collect();
        assert_eq!(rounds, [4, 2, 1, 1]);
        assert!(
            sizes
                .chunks(8)
                .all(|round| round.iter().all(|&size| size == round[0]))
        );
        assert_eq!(pieces.len(), 32);
        assert!(
            pieces
                .windows(2)
                .all(|pair| pair[0].end == pair[1].position)
        );
        assert_eq!((pieces[0].position, pieces[31].end), (0, 64 * MIB));
        assert_eq!(64 * MIB - pieces[24].end, 7 * MIB);
        // Never more than half the file in a round, never a piece under the
        // minimum; sizes that do not divide share the remainder.
        for (total, connections, minimum) in [
            (100, 8, 10),
            (1000, 3, 7),
            (3 * MIB, 8, MIB),
            (10 * MIB + 5, 4, MIB),
            (5, 8, 10),
            (1 << 40, 8, MIB),
        ] {
            let pieces = plan(&[(0, total)], connections, minimum);
            assert_eq!(pieces[0].position, 0);
            assert_eq!(pieces.last().unwrap().end, total);
            assert!(
                pieces
                    .windows(2)
                    .all(|pair| pair[0].end == pair[1].position)
            );
            assert!(
                pieces.len() == 1
                    || pieces
                        .iter()
                        .all(|piece| piece.end - piece.position >= minimum),
                "{total} {connections} {minimum}: {pieces:?}"
            );
            assert!(pieces[0].end - pieces[0].position <= total.div_ceil(2).max(minimum));
            assert!(pieces.len() < 400, "{}", pieces.len());
        }
        // Each missing range is planned on its own: nothing complete is asked.
        let pieces = plan(&[(10, 30), (50, 100)], 2, 10);
        assert_eq!(
            pieces
                .iter()
                .map(|piece| (piece.position, piece.end))
                .collect::<Vec<_>>(),
            [(10, 20), (20, 30), (50, 62), (62, 74), (74, 87), (87, 100)]
        );
    }

    #[test]
    fn sources_that_fail_are_given_up_and_the_last_ends_the_download() {
        let (job, mut context) = (job(), context(4, 10));
        let mut settings = (*context.settings).clone();
        settings.retries = 0;
        context.settings = Arc::new(settings);
        let mut transfer = Transfer::new(&job, &context, None, &job.url);
        let mut ranges = Ranges::new("\"v\"".into(), 100);
        ranges.add(0, 30);
        let start = PiecesStart { ranges, offset: 30 };
        let pieces = Pieces::new(&mut transfer, start, &job, &context, &job.url);
        assert_eq!(pieces.source(1).unwrap().0, 1);
        let claim = pieces.first().unwrap();
        // 70 bytes on four connections, pieces of 10 at least: too few for
        // a round of halves, so four pieces of 17 or 18.
        assert_eq!((claim.start, claim.end), (30, 48));
        assert_eq!(
            pieces.failed(&claim, 1, DownloadError::ConnectionReset),
            Some(Duration::ZERO)
        );
        assert_eq!(pieces.source(1).unwrap().0, 0, "the mirror is given up");
        assert_eq!(pieces.failed(&claim, 0, DownloadError::RangeMismatch), None);
        assert!(pieces.claim().is_none());
        assert_eq!(pieces.finish(), Err(DownloadError::RangeMismatch));
    }
}
