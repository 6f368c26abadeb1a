//! The paths of `grab filter` made into jobs: a file is taken as named (its
//! content decides whether it is an image), a folder gives every JPEG and PNG
//! directly inside it, by name. Each job gets its output path; an input named
//! twice is filtered once, two inputs with the same name from different folders
//! get `name-1.jpg` for the second, and so does an output whose name a file in
//! the output folder holds that the filters did not write ([`record`]): a
//! download or the user's own file is never replaced. Files of the output
//! folder that the filters wrote are skipped as inputs, so filtering a folder
//! into itself again adds nothing. An output that would still land on an
//! input of the batch is refused rather than written.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Failure, Filter, FilterError, Job, Outcome, has_image_extension, output_name, record};

/// What becomes of one path of the batch.
#[derive(Debug)]
pub enum Planned {
    Job(Job),
    /// Cannot become a job: the failed outcome to report.
    Failed(Outcome),
    /// An output an earlier run wrote into the output folder.
    OwnOutput(PathBuf),
}

/// What becomes of each path of the batch, in order.
pub fn plan(paths: &[PathBuf], output_dir: &Path, filters: &[Filter]) -> Vec<Planned> {
    let mut inputs: Vec<Result<PathBuf, Outcome>> = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => match images_in(path) {
                Ok(images) => inputs.extend(images.into_iter().map(Ok)),
                Err(error) => inputs.push(Err(failed(path, path, error))),
            },
            Ok(_) => inputs.push(Ok(path.clone())),
            Err(error) => inputs.push(Err(failed(path, path, error))),
        }
    }

    let recorded = record::load(output_dir);
    let canonical_output_dir = fs::canonicalize(output_dir).unwrap_or_else(|_| output_dir.into());
    let own_output = |path: &Path| {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        canonical.parent() == Some(&canonical_output_dir)
            && canonical
                .file_name()
                .is_some_and(|name| recorded.contains(&*name.to_string_lossy()))
    };
    let mut seen_inputs = HashSet::new();
    let canonical_inputs: HashSet<PathBuf> = inputs
        .iter()
        .flatten()
        .filter(|path| !own_output(path))
        .filter_map(|path| fs::canonicalize(path).ok())
        .collect();
    let mut taken_outputs = HashSet::new();
    let mut jobs = Vec::new();
    for input in inputs {
        let input = match input {
            Ok(input) => input,
            Err(outcome) => {
                jobs.push(Planned::Failed(outcome));
                continue;
            }
        };
        let canonical = fs::canonicalize(&input).unwrap_or_else(|_| input.clone());
        if !seen_inputs.insert(canonical) {
            continue;
        }
        if own_output(&input) {
            jobs.push(Planned::OwnOutput(input));
            continue;
        }
        let Some(file_name) = input.file_name() else {
            let error = std::io::Error::other("not a file name");
            jobs.push(Planned::Failed(failed(&input, &input, error)));
            continue;
        };
        let desired = output_name(filters, &file_name.to_string_lossy());
        let (name, replace) = record::free_name(output_dir, &desired, &recorded, |candidate| {
            !taken_outputs.insert(candidate.to_string())
        });
        let job = Job {
            output: output_dir.join(&name),
            input,
            replace,
        };
        if canonical_inputs.contains(&canonical_output_dir.join(&name)) {
            jobs.push(Planned::Failed(Outcome {
                result: Err(FilterError::new(
                    &job.input,
                    Failure::WouldReplaceInput {
                        output: job.output.display().to_string(),
                    },
                )),
                job,
                elapsed: Duration::ZERO,
            }));
            continue;
        }
        jobs.push(Planned::Job(job));
    }
    jobs
}

/// The JPEG and PNG files directly inside a folder, sorted by name.
fn images_in(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for entry in fs::read_dir(folder)? {
        let path = entry?.path();
        // `metadata` follows symlinks, so a link to an image counts as one.
        if has_image_extension(&path) && fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            images.push(path);
        }
    }
    images.sort();
    Ok(images)
}

fn failed(input: &Path, output: &Path, error: std::io::Error) -> Outcome {
    Outcome {
        job: Job {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            replace: false,
        },
        result: Err(FilterError::new(input, Failure::Read(error.to_string()))),
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::write(path, b"x").unwrap();
    }

    fn job(planned: &Planned) -> &Job {
        match planned {
            Planned::Job(job) => job,
            other => panic!("not a job: {other:?}"),
        }
    }

    fn failure(planned: &Planned) -> &Outcome {
        match planned {
            Planned::Failed(outcome) => outcome,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn folders_give_their_images_sorted_and_files_are_taken_as_named() {
        let (root, folder) = crate::fs::scratch_file("photos");
        fs::create_dir(&folder).unwrap();
        for name in ["b.PNG", "a.jpg", "notes.txt", "c.jpeg"] {
            touch(&folder.join(name));
        }
        fs::create_dir(folder.join("sub.jpg")).unwrap();
        let loose = root.path().join("loose.gif");
        touch(&loose);
        let output = root.path().join("out");
        let jobs = plan(&[folder.clone(), loose.clone()], &output, &[Filter::Blur]);
        let names: Vec<String> = jobs
            .iter()
            .map(|planned| job(planned).output.display().to_string())
            .collect();
        let expected: Vec<String> = ["blur_a.jpg", "blur_b.PNG", "blur_c.jpeg", "blur_loose.gif"]
            .iter()
            .map(|name| output.join(name).display().to_string())
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn repeats_are_dropped_and_same_names_numbered() {
        let root = tempfile::tempdir().unwrap();
        let (one, two) = (root.path().join("one"), root.path().join("two"));
        fs::create_dir(&one).unwrap();
        fs::create_dir(&two).unwrap();
        touch(&one.join("a.png"));
        touch(&two.join("a.png"));
        let output = root.path().join("out");
        let paths = [one.clone(), one.join("a.png"), two.clone()];
        let jobs = plan(&paths, &output, &[Filter::Grayscale]);
        assert_eq!(jobs.len(), 2);
        let outputs: Vec<PathBuf> = jobs
            .iter()
            .map(|planned| job(planned).output.clone())
            .collect();
        assert_eq!(
            outputs,
            [
                output.join("grayscale_a.png"),
                output.join("grayscale_a-1.png")
            ]
        );
    }

    #[test]
    fn missing_paths_fail_and_files_not_ours_are_never_replaced() {
        let root = tempfile::tempdir().unwrap();
        touch(&root.path().join("a.png"));
        touch(&root.path().join("blur_a.png"));
        let paths = [
            root.path().join("missing.png"),
            root.path().join("a.png"),
            root.path().join("blur_a.png"),
        ];
        let jobs = plan(&paths, root.path(), &[Filter::Blur]);
        let missing = failure(&jobs[0]);
        assert!(
            matches!(&missing.result, Err(FilterError { path, failure: Failure::Read(_) }) if path.ends_with("missing.png"))
        );
        // blur_a.png is the user's: a.png's output takes the next name.
        assert_eq!(job(&jobs[1]).output, root.path().join("blur_a-1.png"));
        assert!(!job(&jobs[1]).replace);
        assert_eq!(job(&jobs[2]).output, root.path().join("blur_blur_a.png"));
    }

    #[test]
    fn recorded_outputs_are_skipped_as_inputs_and_replaced_as_outputs() {
        let root = tempfile::tempdir().unwrap();
        touch(&root.path().join("a.png"));
        touch(&root.path().join("blur_a.png"));
        record::add(root.path(), "blur_a.png").unwrap();
        let jobs = plan(&[root.path().to_path_buf()], root.path(), &[Filter::Blur]);
        assert_eq!(jobs.len(), 2);
        assert_eq!(job(&jobs[0]).output, root.path().join("blur_a.png"));
        assert!(job(&jobs[0]).replace);
        assert!(
            matches!(&jobs[1], Planned::OwnOutput(path) if path.ends_with("blur_a.png")),
            "{jobs:?}"
        );
    }
}
