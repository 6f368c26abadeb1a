//! Planning a URL against the output folder's manifest before it is queued: a
//! file an earlier run completed (still the same size and SHA-256) is skipped,
//! `--force` downloads it again over the same name, and `--continue` resumes the
//! part file an interrupted run left, with the validator recorded when it began.
//! Every new download gets its rank among those sharing its base name, in input
//! order, which decides its final name whatever order responses arrive in.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::input::{Job, Plan, Resume};
use crate::fs::fingerprints::FingerprintMap;
use crate::fs::layout::{self, Layout};
use crate::fs::manifest::{self, Entry, Known};
use crate::fs::names::{self, FolderNames, NameRegistry, PART_SUFFIX};
use crate::fs::ranges::Ranges;
use crate::http::Conditional;
use crate::http::transfer::resume_validator;
use crate::http::{Complete, Outcome};

/// Decides, from the manifest of earlier runs, what to do with each URL.
pub struct Planner {
    pub known: Known,
    pub directory: PathBuf,
    pub names: Arc<FolderNames>,
    /// Resume part files (`--continue`).
    pub resume: bool,
    /// Download again what is complete (`--force`).
    pub force: bool,
    /// Re-check what is complete against the server (`-N`): only a newer copy
    /// replaces it.
    pub timestamping: bool,
    /// Where files go: ranks are counted per folder.
    pub layout: Layout,
    /// Per base name (by a 64-bit fingerprint, so a list of millions of
    /// distinct names holds 16 bytes each): how many new downloads have
    /// wanted it. Two bases sharing a fingerprint (about one chance in 40
    /// million in a list of a million) would share a count: a rank past a
    /// free number, never a clash (the registry decides names) nor a name
    /// that changes between runs.
    pub ranks: FingerprintMap<u64, u64>,
    /// Parts an earlier run left that this run, without `--continue`, starts
    /// over: counted, so the run can suggest `-c`.
    pub stale_parts: AtomicU64,
    /// The first of them, until the run has said so (at once, not at the end,
    /// while `-c` can still save the rest).
    pub first_stale_part: std::sync::Mutex<Option<String>>,
}

/// What to do with one URL.
// Both variants are a few hundred bytes and each is moved once per URL: boxing
// the larger would add an allocation per skipped file for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Planned {
    /// Queue it (with a [`Plan`] when an earlier run left its file or part).
    Download(Job),
    /// Already complete: nothing to fetch.
    Skip(Outcome),
}

impl Planner {
    pub fn plan(&mut self, job: Job) -> Planned {
        match self.against_manifest(job) {
            Planned::Download(mut job) if job.plan.is_none() => {
                job.rank = Some(self.rank(&job));
                Planned::Download(job)
            }
            planned => planned,
        }
    }

    /// The job's rank among the new downloads sharing its base name: its name
    /// before the response (the URL's or the input's, without the extension a
    /// Content-Type may add), so `/img?id=1` and `/img?id=2` rank 0 and 1; in
    /// its folder, when `-x` gives it one (a `--spread` folder follows from the
    /// name, so the same base shares it).
    fn rank(&mut self, job: &Job) -> u64 {
        let name = names::desired_name(&job.url, job.name.as_deref(), None);
        let base = self.layout.place(&job.url, &name);
        let key = names::fingerprint(&base) as u64;
        let rank = self.ranks.get(&key).unwrap_or(0);
        self.ranks.set(key, rank + 1);
        rank
    }

    fn against_manifest(&self, mut job: Job) -> Planned {
        let Some(entry) = self.known.get(job.url.as_str()) else {
            return Planned::Download(job);
        };
        match entry {
            Entry::Saved {
                name,
                size,
                sha256,
                etag,
                last_modified,
                ..
            } => {
                let path = self.directory.join(name);
                if !layout::folders_are_real(&self.directory, name)
                    || !path
                        .symlink_metadata()
                        .is_ok_and(|metadata| metadata.is_file())
                {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                if self.force {
                    job.plan = Some(Plan {
                        name: name.clone(),
                        resume: None,
                        replace: true,
                        conditional: None,
                    });
                    return Planned::Download(job);
                }
                match file_matches(&path, *size, sha256) {
                    true if self.timestamping => {
                        job.plan = Some(Plan {
                            name: name.clone(),
                            resume: None,
                            replace: true,
                            conditional: Some(Conditional {
                                etag: etag.clone(),
                                last_modified: last_modified.clone(),
                                size: *size,
                                sha256: sha256.clone(),
                            }),
                        });
                        Planned::Download(job)
                    }
                    true => {
                        if self.resume {
                            // A part beside a complete file is a leftover (a run
                            // killed after its rename was recorded elsewhere):
                            // `-c` tidies what it has finished.
                            let part = self.directory.join(format!("{name}{PART_SUFFIX}"));
                            if part
                                .symlink_metadata()
                                .is_ok_and(|metadata| metadata.is_file())
                            {
                                let _ = fs::remove_file(part);
                            }
                        }
                        Planned::Skip(Outcome::skipped(
                            job,
                            Complete {
                                name: name.clone(),
                                bytes: *size,
                                sha256: sha256.clone(),
                            },
                        ))
                    }
                    // Changed on disk since: keep it, download the URL afresh.
                    false => Planned::Download(job),
                }
            }
            Entry::Started {
                name,
                etag,
                last_modified,
                ..
            } if self.resume => {
                let Some(metadata) = self.part_left(name) else {
                    return Planned::Download(job);
                };
                self.names.claim(name);
                // Without a validator the server's file cannot be proven unchanged:
                // start the part over rather than splice onto it.
                // A part fetched in pieces (`--split`) resumes from its
                // complete prefix; its record says what lies past it.
                let part = self.directory.join(format!("{name}{PART_SUFFIX}"));
                let resume =
                    resume_validator(etag.as_deref(), last_modified.as_deref()).map(|validator| {
                        let offset = match Ranges::load(&part) {
                            Some(ranges) if ranges.validator == validator => {
                                ranges.prefix().min(metadata.len())
                            }
                            Some(_) => 0,
                            None => metadata.len(),
                        };
                        Resume { offset, validator }
                    });
                job.plan = Some(Plan {
                    name: name.clone(),
                    resume,
                    replace: false,
                    conditional: None,
                });
                Planned::Download(job)
            }
            // Without `--continue`, a part an earlier run left is started over
            // under its own name, as the run that began it would have named
            // the file: never beside it as `NAME-1`, leaving the old part for
            // good. Counted, so the run can say `-c` would have resumed it.
            Entry::Started { name, .. } => {
                if self.part_left(name).is_none() {
                    return Planned::Download(job);
                }
                self.names.claim(name);
                if self.stale_parts.fetch_add(1, Ordering::Relaxed) == 0 {
                    *crate::lock(&self.first_stale_part) = Some(name.clone());
                }
                job.plan = Some(Plan {
                    name: name.clone(),
                    resume: None,
                    replace: false,
                    conditional: None,
                });
                Planned::Download(job)
            }
        }
    }
}

impl Planner {
    /// The part an earlier run left for `name` (its metadata), when it is one
    /// to continue or start over: a regular file, in real folders, with no
    /// file under the final name yet.
    fn part_left(&self, name: &str) -> Option<fs::Metadata> {
        if !layout::folders_are_real(&self.directory, name)
            || self.directory.join(name).symlink_metadata().is_ok()
        {
            return None;
        }
        let part = self.directory.join(format!("{name}{PART_SUFFIX}"));
        part.symlink_metadata()
            .ok()
            .filter(|metadata| metadata.is_file())
    }

    /// The notice for the first part this run starts over, once.
    pub fn take_stale_notice(&self) -> Option<String> {
        let name = crate::lock(&self.first_stale_part).take()?;
        Some(format!(
            "starting over {name}{PART_SUFFIX}, an unfinished download from an earlier run \
             (with -c, --continue, grab resumes such parts instead)"
        ))
    }
}

/// Whether a file still has the recorded size and SHA-256.
fn file_matches(path: &Path, size: u64, sha256: &str) -> bool {
    path.metadata().is_ok_and(|metadata| metadata.len() == size)
        && manifest::sha256_of_file(path).is_ok_and(|actual| actual == sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::manifest::{MANIFEST_NAME, Manifest};
    use crate::get::input::Inputs;

    /// A folder whose manifest holds `entries`, and a planner over it.
    struct Folder {
        directory: tempfile::TempDir,
    }

    impl Folder {
        fn new(entries: &[Entry]) -> Folder {
            let directory = tempfile::tempdir().unwrap();
            let manifest = Manifest::open(directory.path()).unwrap();
            for entry in entries {
                manifest.append(entry).unwrap();
            }
            Folder { directory }
        }

        fn write(&self, name: &str, bytes: &[u8]) {
            std::fs::write(self.directory.path().join(name), bytes).unwrap();
        }

        fn planner(&self, resume: bool, force: bool) -> Planner {
            let directory = self.directory.path().to_path_buf();
            Planner {
                known: Known::load(&directory).unwrap(),
                names: Arc::new(FolderNames::new(&directory)),
                directory,
                resume,
                force,
                timestamping: false,
                layout: Layout::default(),
                ranks: Default::default(),
                stale_parts: AtomicU64::new(0),
                first_stale_part: Default::default(),
            }
        }
    }

    fn job(url: &str) -> Job {
        Inputs::from_text("test", format!("{url}\n"))
            .next()
            .unwrap()
            .unwrap()
    }

    fn saved(url: &str, name: &str, bytes: &[u8]) -> Entry {
        Entry::Saved {
            url: url.to_string(),
            key: None,
            name: name.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_of(bytes),
            time: 0,
            etag: None,
            last_modified: None,
        }
    }

    fn started(url: &str, name: &str, etag: Option<&str>) -> Entry {
        Entry::Started {
            url: url.to_string(),
            key: None,
            name: name.to_string(),
            etag: etag.map(str::to_string),
            last_modified: None,
        }
    }

    fn sha256_of(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        manifest::hex(&Sha256::digest(bytes))
    }

    /// A plan for `name`: resumed from `offset` with `validator`, replacing.
    fn planned(name: &str, resume: Option<(u64, &str)>, replace: bool) -> Option<Plan> {
        Some(Plan {
            name: name.to_string(),
            resume: resume.map(|(offset, validator)| Resume {
                offset,
                validator: validator.to_string(),
            }),
            replace,
            conditional: None,
        })
    }

    fn plan_of(planned: Planned) -> Option<Plan> {
        match planned {
            Planned::Download(job) => job.plan,
            Planned::Skip(outcome) => panic!("skipped: {outcome:?}"),
        }
    }

    #[test]
    fn a_url_never_seen_is_downloaded_afresh() {
        let folder = Folder::new(&[]);
        assert_eq!(
            plan_of(folder.planner(true, true).plan(job("http://h/a.jpg"))),
            None
        );
        assert!(folder.directory.path().join(MANIFEST_NAME).exists());
    }

    #[test]
    fn new_downloads_rank_in_input_order_among_their_base_name() {
        let folder = Folder::new(&[saved("http://h/img?id=0", "img.png", b"abc")]);
        folder.write("img.png", b"abc");
        let mut planner = folder.planner(false, false);
        let rank = |planned: Planned| match planned {
            Planned::Download(job) => job.rank,
            Planned::Skip(_) => None,
        };
        // The skipped one takes no rank; the Content-Type's extension is not
        // known yet, so `img` and `img?id=2` share one base.
        assert_eq!(rank(planner.plan(job("http://h/img?id=0"))), None);
        assert_eq!(rank(planner.plan(job("http://h/img?id=1"))), Some(0));
        assert_eq!(rank(planner.plan(job("http://h/other/img"))), Some(1));
        assert_eq!(rank(planner.plan(job("http://h/cat.jpg"))), Some(0));
        assert_eq!(rank(planner.plan(job("http://h/img.png"))), Some(0));
    }

    /// Ranks a list through the planner, in input order: (desired name, rank)
    /// per URL, as the download will ask the registry.
    fn ranks_of(folder: &Folder, list: &str) -> Vec<(String, u64)> {
        let mut planner = folder.planner(false, false);
        Inputs::from_text("list", list.to_string())
            .map(|job| match planner.plan(job.unwrap()) {
                Planned::Download(job) => (
                    names::desired_name(&job.url, job.name.as_deref(), None),
                    job.rank.unwrap(),
                ),
                Planned::Skip(outcome) => panic!("skipped: {outcome:?}"),
            })
            .collect()
    }

    /// The names a batch's downloads get when their responses arrive in
    /// `order` (indices into `ranked`), with one registry as every strategy
    /// shares (the worker processes through their pipe).
    fn names_in_order(folder: &Folder, ranked: &[(String, u64)], order: &[usize]) -> Vec<String> {
        let registry = FolderNames::listed(folder.directory.path());
        let mut names = vec![String::new(); ranked.len()];
        for &index in order {
            let (desired, rank) = &ranked[index];
            names[index] = registry.reserve(desired, Some(*rank)).unwrap();
        }
        names
    }

    #[test]
    fn a_million_urls_of_colliding_names_get_the_same_names_in_any_order() {
        let folder = Folder::new(&[]);
        // In the folder before the run: the ranks of `f7.jpg` skip it.
        folder.write("f7.jpg", b"old");
        const COUNT: usize = 1_000_000;
        const BASES: usize = 50_000;
        // Distinct URLs (997 is prime to 50,000), each name wanted 20 times,
        // and one repeat that takes no rank.
        let mut list: String = (0..COUNT)
            .map(|index| format!("http://h/{}/f{}.jpg\n", index % 997, index % BASES))
            .collect();
        list.push_str("http://h/0/f0.jpg\n");
        let ranked = ranks_of(&folder, &list);
        assert_eq!(ranked.len(), COUNT);
        assert_eq!(ranks_of(&folder, &list), ranked, "two plans of one list");

        let in_input_order: Vec<usize> = (0..COUNT).collect();
        let reversed: Vec<usize> = (0..COUNT).rev().collect();
        // Fisher-Yates with a fixed xorshift: any completion order will do.
        let mut shuffled = in_input_order.clone();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for index in (1..COUNT).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(index, (state % (index as u64 + 1)) as usize);
        }
        let names = names_in_order(&folder, &ranked, &in_input_order);
        assert_eq!(names_in_order(&folder, &ranked, &reversed), names);
        assert_eq!(names_in_order(&folder, &ranked, &shuffled), names);

        let distinct: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(distinct.len(), COUNT, "two downloads share a name");
        assert!(!distinct.contains("f7.jpg"));
        // The n-th URL wanting a name gets its n-th free alternative.
        for (index, name) in names.iter().enumerate() {
            let base = index % BASES;
            let rank = (index / BASES) as u64;
            let skipped = u64::from(base == 7);
            assert_eq!(
                *name,
                names::numbered(&format!("f{base}.jpg"), rank + skipped)
            );
        }
    }

    #[test]
    fn a_complete_file_is_skipped_and_its_name_kept() {
        let folder = Folder::new(&[saved("http://h/a.jpg", "a.jpg", b"abc")]);
        folder.write("a.jpg", b"abc");
        let mut planner = folder.planner(false, false);
        match planner.plan(job("http://h/a.jpg")) {
            Planned::Skip(outcome) => {
                let complete = match outcome.verdict {
                    crate::http::Verdict::Skipped(complete) => complete,
                    other => panic!("{other:?}"),
                };
                assert_eq!(
                    complete,
                    Complete {
                        name: "a.jpg".to_string(),
                        bytes: 3,
                        sha256: sha256_of(b"abc"),
                    }
                );
                assert_eq!(outcome.attempts, 0);
            }
            Planned::Download(job) => panic!("downloaded: {job:?}"),
        }
        // No other URL of the run is handed the name.
        assert_eq!(planner.names.reserve("a.jpg", None).unwrap(), "a-1.jpg");
    }

    // Making a symbolic link takes a privilege on Windows.
    #[cfg(unix)]
    #[test]
    fn a_file_changed_or_gone_since_is_downloaded_afresh() {
        let folder = Folder::new(&[
            saved("http://h/changed.jpg", "changed.jpg", b"abc"),
            saved("http://h/gone.jpg", "gone.jpg", b"abc"),
            saved("http://h/linked.jpg", "linked.jpg", b"abc"),
        ]);
        folder.write("changed.jpg", b"abd");
        folder.write("target", b"abc");
        std::os::unix::fs::symlink(
            folder.directory.path().join("target"),
            folder.directory.path().join("linked.jpg"),
        )
        .unwrap();
        let mut planner = folder.planner(true, false);
        for url in [
            "http://h/changed.jpg",
            "http://h/gone.jpg",
            "http://h/linked.jpg",
        ] {
            assert_eq!(plan_of(planner.plan(job(url))), None, "{url}");
        }
        // The changed file is kept: a new download goes under another name.
        assert_eq!(
            planner.names.reserve("changed.jpg", None).unwrap(),
            "changed-1.jpg"
        );
    }

    #[test]
    fn force_downloads_a_complete_file_again_over_its_name() {
        let folder = Folder::new(&[saved("http://h/a.jpg", "a.jpg", b"abc")]);
        folder.write("a.jpg", b"abc");
        let plan = plan_of(folder.planner(false, true).plan(job("http://h/a.jpg")));
        assert_eq!(plan, planned("a.jpg", None, true));
    }

    #[test]
    fn continue_resumes_a_part_from_its_end_with_its_validator() {
        let folder = Folder::new(&[
            started("http://h/tagged.bin", "tagged.bin", Some("\"v1\"")),
            started("http://h/untagged.bin", "untagged.bin", None),
            started("http://h/weak.bin", "weak.bin", Some("W/\"v1\"")),
        ]);
        folder.write("weak.bin.part", &[7; 10]);
        folder.write("tagged.bin.part", &[7; 1000]);
        folder.write("untagged.bin.part", &[7; 10]);
        let mut planner = folder.planner(true, false);
        assert_eq!(
            plan_of(planner.plan(job("http://h/tagged.bin"))),
            planned("tagged.bin", Some((1000, "\"v1\"")), false)
        );
        // Without a validator the part cannot be trusted: started over, same name.
        assert_eq!(
            plan_of(planner.plan(job("http://h/untagged.bin"))),
            planned("untagged.bin", None, false)
        );
        // A weak ETag proves nothing about bytes: started over.
        assert_eq!(
            plan_of(planner.plan(job("http://h/weak.bin"))),
            planned("weak.bin", None, false)
        );
    }

    #[test]
    fn parts_are_restarted_without_continue_and_left_once_complete() {
        let folder = Folder::new(&[
            started("http://h/a.bin", "a.bin", Some("\"v1\"")),
            started("http://h/done.bin", "done.bin", Some("\"v1\"")),
            started("http://h/nopart.bin", "nopart.bin", Some("\"v1\"")),
        ]);
        folder.write("a.bin.part", b"12");
        folder.write("done.bin.part", b"12");
        folder.write("done.bin", b"1234");
        // Without -c the part is started over under its own name, once said.
        let planner = &mut folder.planner(false, false);
        assert_eq!(
            plan_of(planner.plan(job("http://h/a.bin"))),
            Some(Plan {
                name: "a.bin".to_string(),
                resume: None,
                replace: false,
                conditional: None,
            })
        );
        assert!(planner.take_stale_notice().unwrap().contains("a.bin.part"));
        assert_eq!(planner.take_stale_notice(), None);
        assert_eq!(planner.stale_parts.load(Ordering::Relaxed), 1);
        let mut planner = folder.planner(true, false);
        assert_eq!(plan_of(planner.plan(job("http://h/done.bin"))), None);
        assert_eq!(plan_of(planner.plan(job("http://h/nopart.bin"))), None);
    }
}
