//! Where a command's output goes and its tables come from: a local folder,
//! or a prefix in object storage (`s3://bucket/prefix`, `gs://`, `az://`)
//! through Apache Arrow's `object_store` client. Knows no command.
//!
//! A bucket has no rename and no lock, so the rules differ from a folder's in
//! two ways the callers rely on: an object appears whole when its upload
//! ends (a plain put, or a multipart upload's completion), which is what a
//! folder gets from a rename; and nothing stops two runs writing one prefix,
//! so they must split the work (`--shard`, queue jobs). Work in progress
//! (spooled samples, shards being built, downloaded tables) stays on local
//! disk, in a cache folder keyed by the bucket's URL and endpoint, so a
//! re-run on the same machine finds it again.
//!
//! Credentials, region and endpoint come from the standard variables, read
//! by the client's `from_env` builders: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` (requests then go path-style: `ENDPOINT/bucket/key`),
//! `AWS_ALLOW_HTTP=true` for a plain-http endpoint; `GOOGLE_*` and
//! `AZURE_*` for the others.
//!
//! The rest of grab is synchronous: a bucket carries a small runtime of its
//! own and blocks on it, as mini-redis's blocking client does.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use sha2::{Digest as _, Sha256};

/// The schemes a location may have, for messages.
pub const SCHEMES: &str = "s3://, gs:// or az://";

/// Objects larger than this are uploaded in parts (S3 takes at most 5 GiB in
/// one put, and a part that fails is sent again alone).
const MULTIPART_FROM: u64 = 16 * 1024 * 1024;
/// Size of each part but the last (S3's least is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A location that cannot be used: a usage error.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{text}: {scheme}:// is not a storage grab can use (a local path, {SCHEMES})")]
    Unsupported { text: String, scheme: String },
    #[error("{text}: {message}")]
    Invalid { text: String, message: String },
}

impl LocationError {
    /// What is wrong, without the location (for messages that name it).
    pub fn reason(&self) -> String {
        match self {
            LocationError::Unsupported { scheme, .. } => {
                format!("{scheme}:// is not a storage grab can use (a local path, {SCHEMES})")
            }
            LocationError::Invalid { message, .. } => message.clone(),
        }
    }
}

/// The scheme of `text` when it is written `scheme://...` (a URL, not a
/// path: `C:\x` and `./a://b` have none).
pub fn scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut characters = scheme.chars();
    let first = characters.next()?;
    let valid = first.is_ascii_alphabetic()
        && characters
            .all(|character| character.is_ascii_alphanumeric() || "+.-".contains(character));
    valid.then_some(scheme)
}

/// A bucket prefix and the client that reaches it.
pub struct Bucket {
    /// As given, without a trailing `/`: what messages name.
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Always `Some` until dropped (see [`Drop`]).
    runtime: Option<tokio::runtime::Runtime>,
    /// What besides the URL decides which bucket it is: its endpoint.
    endpoint: String,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Bucket").field(&self.url).finish()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // The last handle may be dropped on an async strategy's thread, where
        // a runtime's blocking shutdown panics: nothing of ours is in flight.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Bucket {
    /// The client for `text` (`s3://bucket/prefix`, `gs://`, `az://`), set
    /// up from the environment. Nothing is requested yet.
    pub fn open(text: &str) -> Result<Bucket, LocationError> {
        let invalid = |message: String| LocationError::Invalid {
            text: text.to_string(),
            message,
        };
        let url = url::Url::parse(text).map_err(|error| invalid(error.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no bucket named".to_string()));
        }
        // reqwest is built without a bundled crypto provider: ring, as the
        // download clients use (installing twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let variables = |names: &[&str]| {
            names
                .iter()
                .map(|name| std::env::var(name).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let built = match url.scheme() {
            "s3" => object_store::aws::AmazonS3Builder::from_env()
                .with_url(text)
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map(|store| {
                    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];
                    (store, variables(&endpoint))
                }),
            "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(text)
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map(|store| (store, variables(&["GOOGLE_BASE_URL"]))),
            "az" => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(text)
                .build()
                .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
                .map(|store| {
                    let account = ["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ENDPOINT"];
                    (store, variables(&account))
                }),
            scheme => {
                return Err(LocationError::Unsupported {
                    text: text.to_string(),
                    scheme: scheme.to_string(),
                });
            }
        };
        let (store, endpoint) = built.map_err(|error| invalid(error.to_string()))?;
        let prefix =
            ObjectPath::from_url_path(url.path()).map_err(|error| invalid(error.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("storage")
            .enable_all()
            .build()
            .map_err(|error| invalid(format!("cannot start the storage client: {error}")))?;
        Ok(Bucket {
            url: text.trim_end_matches('/').to_string(),
            store,
            prefix,
            runtime: Some(runtime),
            endpoint,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `name`'s URL, for messages.
    pub fn describe(&self, name: &str) -> String {
        match name {
            "" => self.url.clone(),
            name => format!("{}/{name}", self.url),
        }
    }

    /// A local folder of this bucket prefix's own, under the system's
    /// temporary folder (`TMPDIR`): the same for every run on this machine
    /// against the same prefix of the same endpoint.
    pub fn cache_folder(&self) -> PathBuf {
        let digest = Sha256::digest(format!("{}\n{}", self.endpoint, self.url));
        let key = crate::fs::manifest::hex(&digest[..8]);
        std::env::temp_dir().join("grab-cache").join(key)
    }

    fn object(&self, name: &str) -> io::Result<ObjectPath> {
        let joined = match (self.prefix.as_ref(), name) {
            (prefix, "") => prefix.to_string(),
            ("", name) => name.to_string(),
            (prefix, name) => format!("{prefix}/{name}"),
        };
        ObjectPath::parse(&joined).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {error}", self.describe(name)),
            )
        })
    }

    /// An error of the client, naming the object's URL; a missing object
    /// keeps `NotFound`.
    fn error(&self, name: &str, error: object_store::Error) -> io::Error {
        let kind = match error {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, format!("{}: {error}", self.describe(name)))
    }

    /// Runs `future` on the bucket's runtime, from any thread: one inside
    /// another runtime (an async strategy's sink) must not block its own
    /// workers on ours, so the wait happens on a thread of its own there.
    /// The future is made where it runs, so it need not be `Send`.
    fn block_on<T: Send, F: Future<Output = T>>(&self, future: impl FnOnce() -> F + Send) -> T {
        let runtime = self.runtime.as_ref().expect("a bucket has its runtime");
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future());
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future()))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The object's bytes, or `None` when there is no such object.
    pub fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.object(name)?;
        let result = self.block_on(|| async move {
            let found = self.store.get(&path).await?;
            found.bytes().await
        });
        match result {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.error(name, error)),
        }
    }

    pub fn exists(&self, name: &str) -> io::Result<bool> {
        let path = self.object(name)?;
        match self.block_on(|| self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.error(name, error)),
        }
    }

    /// Stores `bytes` as `name`, whole.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        let path = self.object(name)?;
        self.block_on(|| self.store.put(&path, PutPayload::from(bytes)))
            .map(drop)
            .map_err(|error| self.error(name, error))
    }

    /// Uploads the file `from` as `name`: in one put, or in parts when it is
    /// large. Either way the object appears only once all of it is there.
    pub fn upload(&self, from: &Path, name: &str) -> io::Result<()> {
        let size = std::fs::metadata(from)?.len();
        if size < MULTIPART_FROM {
            return self.put(name, std::fs::read(from)?);
        }
        let path = self.object(name)?;
        let mut file = std::fs::File::open(from)?;
        let result: Result<(), UploadError> = self.block_on(|| async move {
            let upload = self.store.put_multipart(&path).await?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buffer = vec![0; PART_SIZE];
            loop {
                // A blocking read on the bucket's own runtime, which does
                // nothing else meanwhile but send the parts in flight.
                let read = match file.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(error) => {
                        let _ = parts.abort().await;
                        return Err(UploadError::Reading(error));
                    }
                };
                parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                parts.write(&buffer[..read]);
            }
            parts.finish().await?;
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(UploadError::Reading(error)) => Err(error),
            Err(UploadError::Store(error)) => Err(self.error(name, error)),
        }
    }

    /// The objects directly under `name` (a folder's files; not those of its
    /// sub-folders), by their names relative to it, sorted.
    pub fn list(&self, name: &str) -> io::Result<Vec<String>> {
        let path = self.object(name)?;
        let listed = self
            .block_on(|| self.store.list_with_delimiter(Some(&path)))
            .map_err(|error| self.error(name, error))?;
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|object| object.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Downloads the object `name` to the file `to`, written under a
    /// temporary name and renamed: `to` is whole or absent.
    pub fn download(&self, name: &str, to: &Path) -> io::Result<()> {
        let path = self.object(name)?;
        let mut temporary = crate::fs::atomic::temporary_in(crate::fs::atomic::folder_of(to))?;
        let file = &mut temporary;
        let result: Result<(), UploadError> = self.block_on(|| async move {
            let mut stream = self.store.get(&path).await?.into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?).map_err(UploadError::Reading)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => crate::fs::atomic::commit(temporary, to, true).map(drop),
            Err(UploadError::Reading(error)) => Err(error),
            Err(UploadError::Store(error)) => Err(self.error(name, error)),
        }
    }
}

/// What an upload or download can fail on: the local file, or the store.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("{0}")]
    Reading(io::Error),
    #[error("{0}")]
    Store(#[from] object_store::Error),
}

/// Where a run writes the files at its output's top level: a local folder, or
/// a bucket prefix. Every such file goes through here, so each of them has a
/// folder's guarantee on either: it appears whole or not at all.
#[derive(Debug, Clone)]
pub enum Store {
    Folder(PathBuf),
    Bucket(Arc<Bucket>),
}

impl fmt::Display for Store {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Folder(folder) => write!(formatter, "{}", folder.display()),
            Store::Bucket(bucket) => formatter.write_str(bucket.url()),
        }
    }
}

impl Store {
    /// The output `text` names: a bucket prefix for `s3://`, `gs://` and
    /// `az://`, a usage error for any other `scheme://` (never a folder
    /// named `s3:`), else a local folder.
    pub fn open(text: &Path) -> Result<Store, LocationError> {
        match text.to_str().and_then(scheme) {
            Some(_) => Ok(Store::Bucket(Arc::new(Bucket::open(
                &text.to_string_lossy(),
            )?))),
            None => Ok(Store::Folder(text.to_path_buf())),
        }
    }

    pub fn is_bucket(&self) -> bool {
        matches!(self, Store::Bucket(_))
    }

    /// The local folder behind the store: the folder itself, or the
    /// bucket's cache folder. Work in progress and the run's lock live there.
    pub fn local_folder(&self) -> PathBuf {
        match self {
            Store::Folder(folder) => folder.clone(),
            Store::Bucket(bucket) => bucket.cache_folder(),
        }
    }

    /// `name`'s path or URL, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Store::Folder(folder) => folder.join(name).display().to_string(),
            Store::Bucket(bucket) => bucket.describe(name),
        }
    }

    /// The file's bytes, or `None` when there is none.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match self {
            Store::Folder(folder) => match std::fs::read(folder.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(error),
            },
            Store::Bucket(bucket) => bucket.get(name),
        }
    }

    /// Whether the file `name` is there.
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match self {
            Store::Folder(folder) => Ok(folder.join(name).is_file()),
            Store::Bucket(bucket) => bucket.exists(name),
        }
    }

    /// Writes `bytes` as `name`, whole, replacing what was there.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match self {
            Store::Folder(folder) => {
                crate::fs::atomic::write_atomically(&folder.join(name), bytes, true)
            }
            Store::Bucket(bucket) => bucket.put(name, bytes.to_vec()),
        }
    }

    /// Moves the finished local file or folder `from` to `name`: renamed
    /// into the folder (a folder already there replaced whole), or uploaded
    /// (a folder's files one by one, in name order) and then removed.
    pub fn publish(&self, from: &Path, name: &str) -> io::Result<()> {
        match self {
            Store::Folder(folder) => {
                let to = folder.join(name);
                if to.is_dir() {
                    // An earlier run's folder for an unfinished shard, or the
                    // shard a retry rewrites: moved aside, then replaced
                    // whole, so it is missing for one rename only.
                    let aside = from.with_file_name(format!("{name}.replaced"));
                    let _ = std::fs::remove_dir_all(&aside);
                    std::fs::rename(&to, &aside)?;
                    std::fs::rename(from, &to)?;
                    let _ = std::fs::remove_dir_all(&aside);
                    return Ok(());
                }
                std::fs::rename(from, &to)
            }
            Store::Bucket(bucket) => {
                if from.is_dir() {
                    let mut files = std::fs::read_dir(from)?
                        .map(|entry| entry.map(|entry| entry.file_name()))
                        .collect::<io::Result<Vec<_>>>()?;
                    files.sort();
                    for file in files {
                        let member = format!("{name}/{}", file.to_string_lossy());
                        bucket.upload(&from.join(&file), &member)?;
                    }
                    std::fs::remove_dir_all(from)
                } else {
                    bucket.upload(from, name)?;
                    std::fs::remove_file(from)
                }
            }
        }
    }

    /// The names of the files at the top level, sorted.
    pub fn names(&self) -> io::Result<Vec<String>> {
        match self {
            Store::Folder(folder) => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(folder)? {
                    if let Some(name) = entry?.file_name().to_str() {
                        names.push(name.to_string());
                    }
                }
                names.sort();
                Ok(names)
            }
            Store::Bucket(bucket) => bucket.list(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_from_paths() {
        assert_eq!(scheme("s3://bucket/x"), Some("s3"));
        assert_eq!(scheme("ftp://x"), Some("ftp"));
        assert_eq!(scheme("foo+bar://x"), Some("foo+bar"));
        assert_eq!(scheme("dataset"), None);
        assert_eq!(scheme("./a://b"), None);
        assert_eq!(scheme("C:\\data"), None);
        assert_eq!(scheme("://x"), None);
    }

    #[test]
    fn other_schemes_are_refused() {
        for text in ["ftp://x", "foo://x", "http://host/x"] {
            let error = Store::open(Path::new(text)).unwrap_err();
            assert!(
                matches!(error, LocationError::Unsupported { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains(SCHEMES), "{error}");
        }
        assert!(matches!(
            Store::open(Path::new("out/s3")).unwrap(),
            Store::Folder(_)
        ));
    }
}
