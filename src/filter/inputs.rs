//! The paths of `grab filter` made into jobs: a file is taken as named (its
//! content decides whether it is an image), a folder gives every JPEG and PNG
//! directly inside it, by name. Each job gets its output path; an input named
//! twice is filtered once, two inputs with the same name from different folders
//! get `name-1.jpg` for the second, and an output that would land on an input of
//! the batch is refused rather than written.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Filter, FilterError, Job, Outcome, has_image_extension, output_name};
use crate::get::naming;

/// The batch's jobs in order, or, for a path that cannot become one, the failed
/// outcome to report.
pub fn plan(paths: &[PathBuf], output_dir: &Path, filters: &[Filter]) -> Vec<Result<Job, Outcome>> {
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

    let mut seen_inputs = HashSet::new();
    let canonical_inputs: HashSet<PathBuf> = inputs
        .iter()
        .flatten()
        .filter_map(|path| fs::canonicalize(path).ok())
        .collect();
    let canonical_output_dir = fs::canonicalize(output_dir).unwrap_or_else(|_| output_dir.into());
    let mut taken_outputs = HashSet::new();
    let mut jobs = Vec::new();
    for input in inputs {
        let input = match input {
            Ok(input) => input,
            Err(outcome) => {
                jobs.push(Err(outcome));
                continue;
            }
        };
        let canonical = fs::canonicalize(&input).unwrap_or_else(|_| input.clone());
        if !seen_inputs.insert(canonical) {
            continue;
        }
        let Some(file_name) = input.file_name() else {
            let error = std::io::Error::other("not a file name");
            jobs.push(Err(failed(&input, &input, error)));
            continue;
        };
        let desired = output_name(filters, &file_name.to_string_lossy());
        let name = (0..)
            .map(|n| naming::numbered(&desired, n))
            .find(|candidate| taken_outputs.insert(candidate.clone()))
            .expect("some number is free");
        let job = Job {
            output: output_dir.join(&name),
            input,
        };
        if canonical_inputs.contains(&canonical_output_dir.join(&name)) {
            jobs.push(Err(Outcome {
                result: Err(FilterError::WouldReplaceInput {
                    path: job.input.display().to_string(),
                    output: job.output.display().to_string(),
                }),
                job,
                elapsed: Duration::ZERO,
            }));
            continue;
        }
        jobs.push(Ok(job));
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
        },
        result: Err(FilterError::Read {
            path: input.display().to_string(),
            message: error.to_string(),
        }),
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folders_give_their_images_sorted_and_files_are_taken_as_named() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("photos");
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
            .map(|job| job.as_ref().unwrap().output.display().to_string())
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
        let outputs: Vec<PathBuf> = jobs.into_iter().map(|job| job.unwrap().output).collect();
        assert_eq!(
            outputs,
            [
                output.join("grayscale_a.png"),
                output.join("grayscale_a-1.png")
            ]
        );
    }

    #[test]
    fn missing_paths_fail_and_inputs_are_never_replaced() {
        let root = tempfile::tempdir().unwrap();
        touch(&root.path().join("a.png"));
        touch(&root.path().join("blur_a.png"));
        let paths = [
            root.path().join("missing.png"),
            root.path().join("a.png"),
            root.path().join("blur_a.png"),
        ];
        let jobs = plan(&paths, root.path(), &[Filter::Blur]);
        let missing = jobs[0].as_ref().unwrap_err();
        assert!(
            matches!(&missing.result, Err(FilterError::Read { path, .. }) if path.ends_with("missing.png"))
        );
        let replacing = jobs[1].as_ref().unwrap_err();
        assert!(matches!(
            replacing.result,
            Err(FilterError::WouldReplaceInput { .. })
        ));
        assert_eq!(
            jobs[2].as_ref().unwrap().output,
            root.path().join("blur_blur_a.png")
        );
    }
}
