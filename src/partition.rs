//! `--shard K/N`: one of N runs takes its part of a list, so that N runs over
//! the same list (on a SLURM array, a Kubernetes Indexed Job, GNU parallel)
//! partition it exactly, whatever order the lines come in. `grab get` picks
//! by a stable hash of the URL (a repeated URL lands in the same part);
//! `grab dataset` picks whole output shards by number, so keys and shard
//! numbers stay those of the whole table and never clash across the N runs.

use std::fmt;

use sha2::{Digest, Sha256};
use url::Url;

/// Part `index` of `count` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.index, self.count)
    }
}

/// The variables a scheduler sets to a task's index, tried in this order.
pub const INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

impl Shard {
    /// Parses `K/N`, or `auto/N` where K comes from `SLURM_ARRAY_TASK_ID`
    /// (less `SLURM_ARRAY_TASK_MIN`, so `--array=1-4` works too) or else
    /// `JOB_COMPLETION_INDEX`; `variable` reads the environment.
    pub fn parse(text: &str, variable: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard {text}: expected K/N (such as 0/4) or auto/N"))?;
        let count: u64 = count
            .trim()
            .parse()
            .ok()
            .filter(|&count| count > 0)
            .ok_or_else(|| format!("--shard {text}: N must be a positive whole number"))?;
        let index = match index.trim() {
            "auto" => {
                let (name, value) = INDEX_VARIABLES
                    .iter()
                    .find_map(|name| variable(name).map(|value| (*name, value)))
                    .ok_or_else(|| {
                        format!(
                            "--shard {text}: auto needs {} or {} set to this task's index",
                            INDEX_VARIABLES[0], INDEX_VARIABLES[1]
                        )
                    })?;
                let number = |value: &str, name: &str| {
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| format!("--shard {text}: {name}={value:?} is not an index"))
                };
                let mut index = number(&value, name)?;
                if name == INDEX_VARIABLES[0]
                    && let Some(minimum) = variable("SLURM_ARRAY_TASK_MIN")
                {
                    index = index.saturating_sub(number(&minimum, "SLURM_ARRAY_TASK_MIN")?);
                }
                index
            }
            index => index.parse().map_err(|_| {
                format!("--shard {text}: K must be a whole number or auto, got {index:?}")
            })?,
        };
        if index >= count {
            return Err(format!(
                "--shard {text}: K is {index}, but parts are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether this part takes the URL: by the first 8 bytes of its SHA-256,
    /// so the choice depends on the URL alone.
    pub fn takes_url(&self, url: &Url) -> bool {
        let digest = Sha256::digest(url.as_str().as_bytes());
        let value = u64::from_le_bytes(digest[..8].try_into().expect("8 of 32 bytes"));
        value % self.count == self.index
    }

    /// Whether this part takes the output shard numbered `number`.
    pub fn takes_number(&self, number: u64) -> bool {
        number % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn parses_explicit_and_scheduler_indices() {
        let none = environment(&[]);
        assert_eq!(Shard::parse("2/4", &none), Ok(Shard { index: 2, count: 4 }));
        assert!(Shard::parse("4/4", &none).unwrap_err().contains("0 to 3"));
        assert!(Shard::parse("1/0", &none).is_err());
        assert!(Shard::parse("1", &none).is_err());
        assert!(Shard::parse("x/2", &none).is_err());
        assert!(
            Shard::parse("auto/4", &none)
                .unwrap_err()
                .contains("SLURM_ARRAY_TASK_ID")
        );
        let slurm = environment(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(Shard::parse("auto/4", &slurm).unwrap().index, 2);
        let kubernetes = environment(&[("JOB_COMPLETION_INDEX", "1")]);
        assert_eq!(Shard::parse("auto/2", &kubernetes).unwrap().index, 1);
        let wrong = environment(&[("JOB_COMPLETION_INDEX", "one")]);
        assert!(Shard::parse("auto/2", &wrong).is_err());
    }

    #[test]
    fn every_url_goes_to_exactly_one_part() {
        let parts: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for number in 0..300 {
            let url = Url::parse(&format!("http://h/{number}.jpg")).unwrap();
            let takers: Vec<_> = parts.iter().filter(|part| part.takes_url(&url)).collect();
            assert_eq!(takers.len(), 1);
            sizes[takers[0].index as usize] += 1;
        }
        assert!(sizes.iter().all(|&size| size > 50), "{sizes:?}");
    }
}
