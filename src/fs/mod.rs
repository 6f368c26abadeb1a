//! The file layer: everything grab writes goes through here, so the rules
//! (atomic commits, one file mode, names that cannot leave the folder, one run
//! per folder) hold for every command alike. Knows no command.
//!
//! - [`atomic`]: a whole file written under a temporary name and renamed into
//!   place, with the one mode rule;
//! - [`lock`]: `.grab-lock`, one run per output folder;
//! - [`part`]: the `.part` file that becomes the final name only when complete;
//! - [`names`]: URL to file name, sanitising, numbering, the name registry;
//! - [`layout`]: where a file goes: flat, `-x` folders, `--spread` folders;
//! - [`manifest`]: `.grab-manifest.jsonl`, what earlier runs saved and started.

pub mod atomic;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod names;
pub mod part;
