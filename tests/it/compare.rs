//! `grab compare` and `grab demo`.

use super::support::{Scratch, gallery as start_gallery, grab_command, stderr_of};

fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn compares_all_four_strategies_and_exports_every_row() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list: String = (1..=6)
        .map(|number| format!("{base}/files/f{number}.bin?size=3000\n"))
        .collect();
    let list_path = scratch.write("list.txt", &list);
    let json_path = scratch.root.path().join("table.json");
    let markdown_path = scratch.root.path().join("table.md");
    let output = grab_command()
        .args([
            "compare",
            "-i",
            &list_path,
            "-j",
            "3",
            "--repeat",
            "2",
            "--warmup",
            "1",
            "--export-json",
        ])
        .arg(&json_path)
        .arg("--export-markdown")
        .arg(&markdown_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr_of(&output)
    );
    let json = json_of(&json_path);
    let rows = json["rows"].as_array().unwrap();
    let mut names: Vec<&str> = rows
        .iter()
        .map(|row| row["contender"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["async", "processes", "sequential", "threads"]);
    for row in rows {
        assert_eq!(row["runs"], 2);
        assert_eq!(row["failed_per_run"], 0.0);
        assert!(row["wall_median"].as_f64().unwrap() > 0.0);
        assert!(row["cpu_seconds"].as_f64().unwrap() >= 0.0);
        assert!(row["peak_memory_bytes"].as_u64().unwrap() > 0);
        assert!(
            row["latency_seconds"]["p99"].as_f64().unwrap()
                >= row["latency_seconds"]["p50"].as_f64().unwrap()
        );
        // 6 files of 3000 bytes in every run.
        let expected_rate = 6.0 * 3000.0 / 1e6 / row["wall_median"].as_f64().unwrap();
        assert!(
            (row["megabytes_per_second"].as_f64().unwrap() - expected_rate).abs()
                < 1e-6 * expected_rate.max(1.0)
        );
    }
    // The best row has ratio 1 and comes first.
    assert_eq!(rows[0]["ratio"], 1.0);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4 * 3);
    assert_eq!(runs.iter().filter(|run| run["warmup"] == true).count(), 4);
    assert!(runs.iter().all(|run| run["saved"] == 6));
    let markdown = std::fs::read_to_string(&markdown_path).unwrap();
    assert_eq!(
        markdown
            .lines()
            .filter(|line| line.starts_with("| "))
            .count(),
        1 + 4
    );
    for name in ["async", "processes", "sequential", "threads"] {
        assert!(
            stdout.lines().any(|line| line.starts_with(name)),
            "{name} missing from\n{stdout}"
        );
    }
}

#[test]
fn peers_missing_from_path_are_named_and_skipped() {
    let scratch = Scratch::new();
    let empty_path = scratch.root.path().join("empty-bin");
    std::fs::create_dir(&empty_path).unwrap();
    let json_path = scratch.root.path().join("table.json");
    // No URLs: the built-in gallery, kept small and fast.
    let output = grab_command()
        .env("PATH", &empty_path)
        .args([
            "compare",
            "--peers",
            "--strategies",
            "async,threads",
            "--repeat",
            "1",
            "--warmup",
            "0",
        ])
        .args([
            "--gallery-count",
            "4",
            "--gallery-delay-ms",
            "1",
            "--export-json",
        ])
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr_of(&output)
    );
    assert!(
        stdout.contains("not found: curl, wget2, aria2c"),
        "{stdout}"
    );
    let json = json_of(&json_path);
    assert_eq!(json["missing_peers"].as_array().unwrap().len(), 3);
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    assert_eq!(json["urls"], 4);
}

#[test]
fn demo_ranks_the_four_strategies_and_explains() {
    let output = grab_command()
        .args([
            "demo",
            "-n",
            "4",
            "--delay-ms",
            "1",
            "-j",
            "2",
            "--repeat",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr_of(&output)
    );
    for name in ["async", "processes", "sequential", "threads"] {
        assert!(
            stdout.lines().any(|line| line.starts_with(name)),
            "{name} missing from\n{stdout}"
        );
    }
    assert!(stdout.contains("Why this order"), "{stdout}");
    // Each run is told as it ends (stderr is not a terminal here: no redrawn line).
    let stderr = stderr_of(&output);
    for name in ["async", "processes", "sequential", "threads"] {
        assert!(
            stderr.contains(&format!("warm-up  1  {name}"))
                && stderr.contains(&format!("run  2  {name}")),
            "{name} runs missing from\n{stderr}"
        );
    }
    assert!(!stderr.contains("running..."), "{stderr}");
}

#[test]
fn demo_on_a_terminal_shows_which_strategy_is_running() {
    let drawn = crate::progress::on_a_terminal("demo -n 2 --delay-ms 1 -j 2 --repeat 1", true);
    for name in ["async", "processes", "sequential", "threads"] {
        assert!(
            drawn.contains(&format!("{name:<12} running...")),
            "{name} never shown running in\n{drawn:?}"
        );
    }
    assert!(drawn.contains("Why this order"), "{drawn:?}");
}

/// The `failed` column is per run: one URL that fails in each of three runs
/// shows as 1, not summed to 3; the run still exits 1.
#[test]
fn failures_are_counted_per_run_not_summed_over_repeats() {
    let server = start_gallery();
    let base = server.base_url();
    let scratch = Scratch::new();
    let list = format!("{base}/files/a.bin?size=100\n{base}/no-such-route/b.bin\n");
    let list_path = scratch.write("list.txt", &list);
    let json_path = scratch.root.path().join("table.json");
    let output = grab_command()
        .args([
            "compare",
            "-i",
            &list_path,
            "--strategies",
            "async",
            "--repeat",
            "3",
            "--warmup",
            "0",
            "--export-json",
        ])
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        stderr_of(&output)
    );
    assert!(stdout.contains("failed/run"), "{stdout}");
    let json = json_of(&json_path);
    assert_eq!(json["rows"][0]["failed_per_run"], 1.0, "{json}");
    assert!(
        json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|run| run["failed"] == 1)
    );
}

/// A bar of the timelines, read back from the data attributes the picture
/// puts on it.
#[derive(Debug)]
struct Bar {
    strategy: String,
    lane: String,
    start: f64,
    end: f64,
}

/// The value of `name="..."` in an element's opening tag.
fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    let marker = format!(" {name}=\"");
    let from = tag
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + marker.len();
    &tag[from..from + tag[from..].find('"').unwrap()]
}

/// The opening tags that start with `prefix`.
fn tags<'a>(document: &'a str, prefix: &str) -> Vec<&'a str> {
    document
        .match_indices(prefix)
        .map(|(at, _)| &document[at..at + document[at..].find('>').unwrap()])
        .collect()
}

fn bars(document: &str) -> Vec<Bar> {
    tags(document, "<rect class=\"bar\"")
        .into_iter()
        .map(|tag| Bar {
            strategy: attribute(tag, "data-strategy").to_string(),
            lane: attribute(tag, "data-lane").to_string(),
            start: attribute(tag, "data-start").parse().unwrap(),
            end: attribute(tag, "data-end").parse().unwrap(),
        })
        .collect()
}

#[test]
fn the_picture_has_a_bar_per_download_on_the_lanes_of_each_strategy() {
    let scratch = Scratch::new();
    let html_path = scratch.root.path().join("compare.html");
    let svg_path = scratch.root.path().join("timelines.svg");
    let (downloads, jobs) = (6, 2);
    let output = grab_command()
        .args(["compare", "--repeat", "1", "--warmup", "0", "-j"])
        .arg(jobs.to_string())
        .args(["--gallery-count", &downloads.to_string()])
        .args(["--gallery-delay-ms", "5", "--export-html"])
        .arg(&html_path)
        .arg("--export-svg")
        .arg(&svg_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    // Self-contained: nothing fetched, no script.
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "{html}"
    );
    assert!(html.contains("<pre>strategy"), "the table is on the page");
    assert!(html.contains("class=\"latency\"") && html.contains("peak memory"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    let walls: Vec<(String, f64)> = tags(&html, "<g class=\"strategy\"")
        .into_iter()
        .map(|tag| {
            let wall = attribute(tag, "data-wall").parse().unwrap();
            (attribute(tag, "data-strategy").to_string(), wall)
        })
        .collect();
    assert_eq!(walls.len(), 4, "{walls:?}");
    let bars = bars(&html);
    assert_eq!(
        bars.len(),
        bars_in_svg(&svg),
        "the SVG holds the same timelines"
    );
    for (strategy, wall) in &walls {
        let mine: Vec<&Bar> = bars
            .iter()
            .filter(|bar| &bar.strategy == strategy)
            .collect();
        assert_eq!(mine.len(), downloads, "{strategy}: {mine:?}");
        let mut lanes: Vec<&str> = mine.iter().map(|bar| bar.lane.as_str()).collect();
        lanes.sort();
        lanes.dedup();
        if strategy == "sequential" {
            assert_eq!(lanes.len(), 1, "{lanes:?}");
        } else {
            assert!(lanes.len() <= jobs, "{strategy}: {lanes:?}");
        }
        for bar in &mine {
            assert!(
                0.0 <= bar.start && bar.start <= bar.end && bar.end <= *wall,
                "{strategy}: {bar:?} outside the wall time {wall}"
            );
        }
        if strategy == "sequential" {
            let mut ordered = mine.clone();
            ordered.sort_by(|first, second| first.start.total_cmp(&second.start));
            for pair in ordered.windows(2) {
                assert!(
                    pair[0].end <= pair[1].start,
                    "overlapping: {:?} {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

fn bars_in_svg(svg: &str) -> usize {
    bars(svg).len()
}

#[test]
fn demo_writes_its_picture_and_prints_where() {
    let output = grab_command()
        .args([
            "demo",
            "-n",
            "3",
            "--delay-ms",
            "1",
            "-j",
            "2",
            "--repeat",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr_of(&output)
    );
    let path = stdout
        .lines()
        .find_map(|line| line.strip_prefix("The picture of these runs: "))
        .unwrap_or_else(|| panic!("no picture in\n{stdout}"));
    let html = std::fs::read_to_string(path).unwrap();
    std::fs::remove_file(path).unwrap();
    assert_eq!(bars(&html).len(), 4 * 3);
    assert!(
        html.contains("Why this order"),
        "the explanation is on the page"
    );
}

/// The page as a browser draws it: a real headless Chromium opens the HTML
/// and its screenshot (kept as target/test-artefacts/compare.png) is not blank,
/// and where the browser laid out each bar of the timelines, the screenshot has
/// the bar's colour: the timelines are drawn, every strategy's.
#[test]
#[cfg(unix)]
fn the_page_draws_its_timelines_in_a_real_browser() {
    let scratch = Scratch::new();
    let html_path = scratch.root.path().join("compare.html");
    let downloads = 6;
    let output = grab_command()
        .args(["compare", "--repeat", "1", "--warmup", "0", "-j", "2"])
        .args(["--gallery-count", &downloads.to_string()])
        .args(["--gallery-delay-ms", "40", "--export-html"])
        .arg(&html_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mut page = super::browser::Page::open(&format!("file://{}", html_path.display()));
    let laid_out = page.evaluate(
        "Array.from(document.querySelectorAll('svg.timelines rect.bar'), bar => { \
         const box = bar.getBoundingClientRect(); \
         return {strategy: bar.dataset.strategy, x: box.x + scrollX, y: box.y + scrollY, \
         width: box.width, height: box.height}; })",
    );
    let shot = page.screenshot("compare.png");
    let laid_out = laid_out.as_array().unwrap();
    assert_eq!(laid_out.len(), 4 * downloads, "{laid_out:?}");

    // Not blank: a good share of the page is not its white background.
    let drawn = shot
        .pixels()
        .filter(|pixel| pixel.0[..3] != [255, 255, 255])
        .count();
    let share = drawn as f64 / (shot.width() * shot.height()) as f64;
    assert!(
        share > 0.03,
        "only {:.2}% of the page is drawn",
        share * 100.0
    );

    // The colour of a saved download's bar, and how far anti-aliasing or colour
    // management may move a channel.
    let saved = [0x2f, 0x6f, 0xdf];
    let near = |pixel: &image::Rgba<u8>| {
        pixel.0[..3]
            .iter()
            .zip(saved)
            .all(|(channel, wanted)| channel.abs_diff(wanted) <= 24)
    };
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for bar in laid_out {
        let number = |key: &str| bar[key].as_f64().unwrap();
        let (x, y, width, height) = (number("x"), number("y"), number("width"), number("height"));
        // A bar a few pixels across has a centre pixel of its own colour.
        if width < 4.0 || height < 4.0 {
            continue;
        }
        let (center_x, center_y) = ((x + width / 2.0) as u32, (y + height / 2.0) as u32);
        assert!(
            center_x < shot.width() && center_y < shot.height(),
            "{bar} is outside the {}x{} screenshot",
            shot.width(),
            shot.height()
        );
        let pixel = shot.get_pixel(center_x, center_y);
        assert!(near(pixel), "{bar} is drawn as {pixel:?}, not #2f6fdf");
        *checked
            .entry(bar["strategy"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        checked.keys().map(String::as_str).collect::<Vec<_>>(),
        ["async", "processes", "sequential", "threads"],
        "some strategy has no bar wide enough to check: {checked:?}"
    );
}

/// curl -Z is drawn too, from its own report of each transfer as it ended: a
/// bar per download on the lane of its connection, within the run's wall time,
/// and its latencies from the same reports.
#[test]
fn curl_is_drawn_from_its_own_transfer_reports() {
    let curl_installed = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|folder| folder.join("curl").is_file())
    });
    assert!(
        curl_installed,
        "curl is not installed, and this test compares it: run ./test, which installs it"
    );
    let scratch = Scratch::new();
    let html_path = scratch.root.path().join("compare.html");
    let json_path = scratch.root.path().join("compare.json");
    let downloads = 6;
    let output = grab_command()
        .args(["compare", "--peers", "--strategies", "async"])
        .args(["--repeat", "1", "--warmup", "0", "-j", "2"])
        .args(["--gallery-count", &downloads.to_string()])
        .args(["--gallery-delay-ms", "20", "--export-html"])
        .arg(&html_path)
        .arg("--export-json")
        .arg(&json_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let wall: f64 = tags(&html, "<g class=\"strategy\"")
        .into_iter()
        .find(|tag| attribute(tag, "data-strategy") == "curl -Z")
        .map(|tag| attribute(tag, "data-wall").parse().unwrap())
        .unwrap_or_else(|| panic!("no curl timeline in {html}"));
    let bars: Vec<Bar> = bars(&html)
        .into_iter()
        .filter(|bar| bar.strategy == "curl -Z")
        .collect();
    assert_eq!(bars.len(), downloads, "{bars:?}");
    for bar in &bars {
        assert!(bar.lane.starts_with("connection "), "{bar:?}");
        assert!(
            0.0 <= bar.start && bar.start <= bar.end && bar.end <= wall,
            "{bar:?} outside the wall time {wall}"
        );
    }
    let json = json_of(&json_path);
    let row = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["contender"] == "curl -Z")
        .unwrap();
    assert!(
        row["latency_seconds"]["p50"].as_f64().unwrap() > 0.0,
        "{row}"
    );
}
