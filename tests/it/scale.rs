//! Scaling out: `--shard K/N` splitting a list over runs.

use std::collections::BTreeSet;
use std::path::Path;

use grab::dataset::Keys;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::support::{Scratch, files_in, gallery, grab, stderr_of};

/// The URL of every file a folder's manifest says was saved, in order.
fn saved_urls(directory: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(directory.join(grab::fs::MANIFEST_NAME)).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|entry| entry["event"] == "saved")
        .map(|entry| entry["url"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_of_a_list_partition_it_whatever_the_order() {
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let urls: Vec<String> = (0..60)
        .map(|number| format!("{base}/files/n{number}.bin?size=16"))
        .collect();
    // Part of the runs read the list backwards, with a repeat: the parts
    // depend on the URLs alone.
    let forwards = scratch.write("forwards.txt", &(urls.join("\n") + "\n"));
    let mut reversed: Vec<String> = urls.iter().rev().cloned().collect();
    reversed.push(urls[7].clone());
    let backwards = scratch.write("backwards.txt", &(reversed.join("\n") + "\n"));
    let mut parts: Vec<BTreeSet<String>> = Vec::new();
    for index in 0..4 {
        let output = scratch.root.path().join(format!("part{index}"));
        let list = if index % 2 == 0 {
            &forwards
        } else {
            &backwards
        };
        let shard = format!("{index}/4");
        let run = grab(
            &[
                "get",
                "-q",
                "-o",
                output.to_str().unwrap(),
                "-i",
                list,
                "--shard",
                &shard,
            ],
            None,
        );
        assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
        let urls = saved_urls(&output);
        assert_eq!(files_in(&output).len(), urls.len());
        let part: BTreeSet<String> = urls.into_iter().collect();
        assert_eq!(part.len(), files_in(&output).len(), "a URL saved twice");
        parts.push(part);
    }
    let mut union = BTreeSet::new();
    for (index, part) in parts.iter().enumerate() {
        assert!(!part.is_empty(), "part {index} took nothing");
        for other in &parts[index + 1..] {
            assert!(part.is_disjoint(other), "parts overlap");
        }
        union.extend(part.iter().cloned());
    }
    assert_eq!(union, urls.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn a_scheduler_index_must_be_set_for_auto() {
    let run = super::support::grab_command()
        .args(["get", "http://127.0.0.1:1/a", "--shard", "auto/4"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr_of(&run).contains("SLURM_ARRAY_TASK_ID"));
}

/// The keys in a dataset folder's metadata, shard by shard.
fn dataset_keys(directory: &Path) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for name in files_in(directory) {
        if !name.ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(directory.join(&name)).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap().to_json_value();
            assert!(keys.insert(row["key"].as_str().unwrap().to_string()));
        }
    }
    keys
}

#[test]
fn dataset_shards_keep_the_tables_keys_and_never_share_a_number() {
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let table: String = (0..20)
        .map(|number| format!("{base}/images/s{number}.jpg?w=8&h=8\n"))
        .collect();
    let table = scratch.write("table.txt", &table);
    let mut every = BTreeSet::new();
    let mut stats = Vec::new();
    for index in 0..2 {
        let output = scratch.root.path().join(format!("part{index}"));
        let shard = format!("{index}/2");
        let run = grab(
            &[
                "dataset",
                &table,
                "-o",
                output.to_str().unwrap(),
                "--samples-per-shard",
                "3",
                "--progress",
                "none",
                "--shard",
                &shard,
            ],
            None,
        );
        assert!(run.status.success(), "{}", stderr_of(&run));
        let keys = dataset_keys(&output);
        assert!(keys.is_disjoint(&every));
        every.extend(keys);
        let complete: Vec<String> = files_in(&output)
            .into_iter()
            .filter(|name| name.ends_with("_stats.json"))
            .collect();
        stats.extend(complete);
    }
    let keys = Keys::new(3, grab::dataset::SHARD_DIGITS);
    assert_eq!(every, (0..20).map(|row| keys.key(row)).collect());
    // Seven shards, numbered once over both runs: 0, 2, 4, 6 and 1, 3, 5.
    stats.sort();
    let expected: Vec<String> = (0..7)
        .map(|shard| format!("{shard:05}_stats.json"))
        .collect();
    assert_eq!(stats, expected);
}

/// The whole-output counts of a dataset folder's `stats.json`.
fn folder_counts(directory: &Path) -> serde_json::Value {
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(directory.join("stats.json")).unwrap()).unwrap();
    let fields = [
        "count",
        "successes",
        "failed_to_download",
        "failed_to_resize",
        "opted_out",
        "failures",
        "shards",
    ];
    fields
        .iter()
        .map(|field| (field.to_string(), stats[field].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn shard_runs_into_one_folder_end_with_the_stats_of_one_whole_run() {
    let server = gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    // 17 rows, 3 of them failing: 6 shards of 3 (the last of 2).
    let table: String = (0..17)
        .map(|number| match number % 6 {
            5 => format!("{base}/missing/{number}.jpg\n"),
            _ => format!("{base}/images/s{number}.jpg?w=8&h=8\n"),
        })
        .collect();
    let table = scratch.write("table.txt", &table);
    let build = |output: &Path, shard: Option<&str>| {
        let mut arguments = vec![
            "dataset",
            &table,
            "-o",
            output.to_str().unwrap(),
            "--samples-per-shard",
            "3",
            "--progress",
            "none",
        ];
        if let Some(shard) = shard {
            arguments.extend(["--shard", shard]);
        }
        let run = grab(&arguments, None);
        assert!(run.status.success(), "{}", stderr_of(&run));
    };
    let whole = scratch.root.path().join("whole");
    build(&whole, None);
    let shared = scratch.output();
    build(&shared, Some("0/2"));
    let half: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("stats.json")).unwrap()).unwrap();
    assert_eq!(half["shards"], 3, "{half}");
    build(&shared, Some("1/2"));
    let expected = folder_counts(&whole);
    assert_eq!(expected["count"], 17, "{expected}");
    assert_eq!(expected["failed_to_download"], 2, "{expected}");
    assert_eq!(expected["shards"], 6, "{expected}");
    assert_eq!(folder_counts(&shared), expected);

    // Rebuilt by hand, from the shard files alone.
    std::fs::remove_file(shared.join("stats.json")).unwrap();
    let rebuilt = grab(
        &["dataset", "stats", shared.to_str().unwrap(), "--json"],
        None,
    );
    assert!(rebuilt.status.success(), "{}", stderr_of(&rebuilt));
    let printed: serde_json::Value = serde_json::from_slice(&rebuilt.stdout).unwrap();
    assert_eq!(printed["count"], 17, "{printed}");
    assert_eq!(folder_counts(&shared), expected);
    let nowhere = grab(&["dataset", "stats", "/nonexistent/folder"], None);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(stderr_of(&nowhere).contains("/nonexistent/folder: no such folder"));
}

/// `grab dataset stats` on a folder no dataset run wrote to (a typo, the
/// table's folder) is a usage error naming it, and writes no zero stats.json
/// that would pass for an empty dataset.
#[test]
fn dataset_stats_on_a_folder_without_shards_is_an_error_and_writes_nothing() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.output()).unwrap();
    std::fs::write(scratch.output().join("urls.txt"), "http://127.0.0.1:9/a\n").unwrap();
    let folder = scratch.output_arg();
    let output = grab(&["dataset", "stats", &folder, "--json"], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{folder} holds no shards")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    assert_eq!(files_in(&scratch.output()), ["urls.txt"]);
    let file = scratch.output().join("urls.txt").display().to_string();
    let output = grab(&["dataset", "stats", &file], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("is a file"),
        "{}",
        stderr_of(&output)
    );
}
