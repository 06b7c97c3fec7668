//! What `--image PATH` can be, recognised by content, never by file name:
//! a root filesystem tarball (`docker export`; plain, gzip or zstd), a
//! `docker save` archive (manifest.json, a config and one tar per layer), or
//! an OCI image layout (oci-layout, index.json, blobs/sha256/…), as a
//! directory (`skopeo copy … oci:DIR`) or as a tar archive (`docker buildx
//! --output type=oci`, `podman save --format oci-archive`).
//!
//! This module only reads: it says which layers an image has (bottom
//! first), with the digest each must match, and what its config says.
//! Unpacking them into the store is [`crate::image`]'s job.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tar::Archive;

use crate::image::Config;

/// How an image arrived, as `images` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A root filesystem tarball: one layer, no config.
    Rootfs,
    /// `docker save`.
    DockerSave,
    /// An OCI image layout, directory or archive.
    Oci,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Rootfs => "rootfs-tar",
            Format::DockerSave => "docker-save",
            Format::Oci => "oci",
        }
    }
}

/// What a layer's bytes must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Digest {
    /// sha256 of the blob as stored (an OCI manifest's layer digest,
    /// usually of the compressed tar).
    Blob(String),
    /// sha256 of the uncompressed tar (a docker save config's diff_id).
    DiffId(String),
    /// Nothing to check against (a root filesystem tarball): the layer is
    /// keyed by the sha256 of the file.
    None,
}

/// One layer of an image: where its tar is, and what it must hash to.
pub struct Layer {
    /// The blob's name in the archive or layout (`blobs/sha256/…`,
    /// `<id>/layer.tar`), for messages.
    pub name: String,
    pub digest: Digest,
    /// The blob's size, for the progress bar.
    pub size: u64,
}

/// An image read from a path: its format, its layers bottom first, its
/// config, and the means to open each layer's bytes.
pub struct Parsed {
    pub format: Format,
    pub layers: Vec<Layer>,
    pub config: Config,
    blobs: Blobs,
}

impl Parsed {
    /// The raw bytes of layer `layer` (compressed as stored).
    pub fn open(&self, layer: &Layer) -> Result<Box<dyn Read>> {
        self.blobs.open(&layer.name)
    }
}

/// Where an image's files are: a directory, or entries of an uncompressed
/// tar found by their offset (the tar crate's `raw_file_position`), so that
/// a layer is read straight from the archive, never copied out first.
enum Blobs {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        index: HashMap<String, (u64, u64)>,
    },
    /// A root filesystem tarball: the file is the one layer.
    Whole(PathBuf),
}

impl Blobs {
    fn open(&self, name: &str) -> Result<Box<dyn Read>> {
        match self {
            Blobs::Dir(dir) => {
                let path = dir.join(name);
                Ok(Box::new(fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?))
            }
            Blobs::Tar { file, index } => {
                let Some((offset, size)) = index.get(name) else {
                    bail!("{} has no {name}, which its manifest names: the archive is incomplete", file.display());
                };
                let mut opened = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
                opened.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(opened.take(*size)))
            }
            Blobs::Whole(file) => {
                Ok(Box::new(fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?))
            }
        }
    }

    fn read(&self, name: &str, input: &Path) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(name)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("image {}: cannot read {name}", input.display()))?;
        Ok(bytes)
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Blobs::Dir(dir) => dir.join(name).is_file(),
            Blobs::Tar { index, .. } => index.contains_key(name),
            Blobs::Whole(_) => false,
        }
    }
}

/// How a stream is compressed, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Compressions recognised by their magic bytes but not read: refused by
/// name rather than as a corrupt tarball.
const UNSUPPORTED: &[(&[u8], &str)] = &[(b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2")];

/// The compression of the stream that starts with `magic`, or an error
/// naming the one we do not read and the fix.
pub fn compression(magic: &[u8], input: &Path) -> Result<Compression> {
    if let Some((_, kind)) = UNSUPPORTED.iter().find(|(bytes, _)| magic.starts_with(bytes)) {
        bail!("image {} is {kind}-compressed: decompress it to a plain .tar (`{kind} -d`)", input.display());
    }
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(b"\x28\xb5\x2f\xfd") {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// `reader` decompressed, whatever it is compressed with (found from its
/// first bytes).
pub fn decompressed<'a>(mut reader: Box<dyn BufRead + 'a>, input: &Path) -> Result<Box<dyn BufRead + 'a>> {
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", input.display())),
        }
    }
    let whole = io::Cursor::new(magic[..got].to_vec()).chain(reader);
    Ok(match compression(&magic[..got], input)? {
        Compression::None => Box::new(whole),
        Compression::Gzip => buffered(flate2::bufread::GzDecoder::new(whole)),
        // ruzstd reads one zstd frame, which is what `zstd` and the image
        // tools write for a file.
        Compression::Zstd => buffered(
            ruzstd::decoding::StreamingDecoder::new(whole)
                .map_err(|err| anyhow!("image {} is not a valid zstd stream ({err})", input.display()))?,
        ),
    })
}

/// The size of the reads from an image's files and of the buffers after a
/// decompressor: the tar crate reads each 512-byte header with a read of
/// its own.
pub const READ_BUFFER: usize = 128 << 10;

/// `reader` (a file, a decompressor) read through a buffer of
/// [`READ_BUFFER`].
pub fn buffered<'a>(reader: impl Read + 'a) -> Box<dyn BufRead + 'a> {
    Box::new(io::BufReader::with_capacity(READ_BUFFER, reader))
}

/// Reads the image at `input` (a file or a directory), by content.
/// `scratch` is a directory of the image store's staging area, where a
/// compressed archive is decompressed once so that its layers can be read
/// from it in any order.
pub fn parse(input: &Path, scratch: &Path) -> Result<Parsed> {
    let meta = fs::metadata(input).with_context(|| format!("image {}: cannot stat it", input.display()))?;
    if meta.is_dir() {
        let blobs = Blobs::Dir(input.to_path_buf());
        return if blobs.has("manifest.json") {
            docker_save(input, blobs)
        } else if blobs.has("oci-layout") {
            oci(input, blobs)
        } else {
            bail!(
                "image {} is a directory but not an OCI image layout (no oci-layout file): give an OCI layout, a docker save archive or a rootfs tarball",
                input.display()
            )
        };
    }
    let mut magic = Vec::new();
    fs::File::open(input)
        .and_then(|file| file.take(6).read_to_end(&mut magic))
        .with_context(|| format!("cannot read {}", input.display()))?;
    let compressed = compression(&magic, input)? != Compression::None;
    let Some(names) = image_archive_entries(input)? else {
        return Ok(Parsed {
            format: Format::Rootfs,
            layers: vec![Layer { name: String::new(), digest: Digest::None, size: meta.len() }],
            config: Config::default(),
            blobs: Blobs::Whole(input.to_path_buf()),
        });
    };
    // An image archive: index its entries, from a decompressed copy when
    // it is compressed (`docker save | gzip`).
    let file = if compressed {
        let copy = scratch.join("archive.tar");
        let mut out = fs::File::create(&copy).with_context(|| format!("cannot create {}", copy.display()))?;
        let mut reader = decompressed(buffered(fs::File::open(input)?), input)?;
        io::copy(&mut reader, &mut out).map_err(|err| truncated(input, &err.to_string()))?;
        copy
    } else {
        input.to_path_buf()
    };
    let index = index_tar(&file, input)?;
    let blobs = Blobs::Tar { file, index };
    if names.iter().any(|name| name == "manifest.json") {
        docker_save(input, blobs)
    } else if names.iter().any(|name| name == "oci-layout") {
        oci(input, blobs)
    } else {
        bail!(
            "image {} looks like an image archive but has neither manifest.json nor oci-layout: save or copy it again",
            input.display()
        )
    }
}

/// The error for an archive cut short or damaged.
fn truncated(input: &Path, cause: &str) -> anyhow::Error {
    anyhow!("image {} is truncated or corrupt ({cause}): copy or save it again", input.display())
}

/// Whether a top-level name belongs to an image archive rather than to a
/// root filesystem: docker save's `<64 hex>/…`, `<64 hex>.json`,
/// `manifest.json`, `repositories`, and OCI's `blobs/…`, `index.json`,
/// `oci-layout`.
fn archive_name(first: &str, whole: &str) -> bool {
    let hex = |text: &str| text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit());
    matches!(first, "manifest.json" | "repositories" | "index.json" | "oci-layout" | "blobs")
        || hex(first)
        || first.strip_suffix(".json").is_some_and(hex)
        || whole.is_empty()
}

/// The entry names of `input` when it is an image archive (every top-level
/// name is one an image archive has), else None: a root filesystem shows
/// itself at its first entry (`bin/`, `etc/`), so this rarely reads far.
fn image_archive_entries(input: &Path) -> Result<Option<Vec<String>>> {
    let reader = decompressed(buffered(fs::File::open(input)?), input)?;
    let mut archive = Archive::new(reader);
    let mut names = Vec::new();
    let entries = archive.entries().map_err(|err| truncated(input, &err.to_string()))?;
    for entry in entries {
        crate::signals::check()?;
        let entry = match entry {
            Ok(entry) => entry,
            // An image archive cut short.
            Err(err) if !names.is_empty() => return Err(truncated(input, &err.to_string())),
            // A broken tarball: left for the unpacking to report, which
            // names what is wrong.
            Err(_) => return Ok(None),
        };
        let name = normal(&entry.path_bytes());
        let first = name.split('/').next().unwrap_or("");
        if !archive_name(first, &name) {
            return Ok(None);
        }
        names.push(name);
    }
    Ok((!names.is_empty()).then_some(names))
}

/// An entry name without `./` and trailing `/`.
fn normal(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches("./").trim_end_matches('/');
    text.to_string()
}

/// name → (offset of its data, size), for the regular files of an
/// uncompressed tar. A tar that ends early is refused here, before any
/// layer is unpacked.
fn index_tar(file: &Path, input: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let opened = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = opened.metadata()?.len();
    let mut archive = Archive::new(opened);
    let mut index = HashMap::new();
    let mut end = 0;
    for entry in archive.entries().map_err(|err| truncated(input, &err.to_string()))? {
        let entry = entry.map_err(|err| truncated(input, &err.to_string()))?;
        let (offset, len) = (entry.raw_file_position(), entry.size());
        end = end.max(offset + len);
        if entry.header().entry_type().is_file() {
            index.insert(normal(&entry.path_bytes()), (offset, len));
        }
    }
    if end > size {
        return Err(truncated(input, "an entry ends past the end of the file"));
    }
    Ok(index)
}

/// docker save's manifest.json: one object per image.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    layers: Vec<String>,
}

/// The parts of an image config (docker save's `<id>.json`, OCI's config
/// blob) that running it needs.
#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<RunConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The run defaults, as Docker names them (any of them may be null).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
}

impl From<RunConfig> for Config {
    fn from(run: RunConfig) -> Config {
        Config {
            env: run.env.unwrap_or_default(),
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            working_dir: run.working_dir.unwrap_or_default(),
            user: run.user.unwrap_or_default(),
        }
    }
}

fn json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str, input: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| anyhow!("image {}: {what} is not valid ({err}): save or copy the image again", input.display()))
}

fn docker_save(input: &Path, blobs: Blobs) -> Result<Parsed> {
    let manifests: Vec<DockerManifest> = json(&blobs.read("manifest.json", input)?, "manifest.json", input)?;
    // One image per archive here; `docker save a b` writes several, and we
    // run the first (a real tool would ask which, by its RepoTags).
    let Some(manifest) = manifests.into_iter().next() else {
        bail!("image {}: manifest.json lists no image: save it again", input.display());
    };
    let config: ImageConfig = json(&blobs.read(&manifest.config, input)?, &manifest.config, input)?;
    let diff_ids = config.rootfs.map(|rootfs| rootfs.diff_ids).unwrap_or_default();
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "image {}: the config lists {} layer digests for {} layers: save the image again",
            input.display(),
            diff_ids.len(),
            manifest.layers.len()
        );
    }
    let mut layers = Vec::new();
    for (name, diff_id) in manifest.layers.into_iter().zip(diff_ids) {
        let hex = sha256_hex(&diff_id, input)?;
        let size = blob_size(&blobs, &name);
        layers.push(Layer { name: normal(name.as_bytes()), digest: Digest::DiffId(hex), size });
    }
    Ok(Parsed { format: Format::DockerSave, layers, config: config.config.unwrap_or_default().into(), blobs })
}

/// An OCI descriptor: what a blob is, its digest and size.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// index.json and image indexes (`manifests`), and image manifests
/// (`config`, `layers`).
#[derive(Deserialize)]
struct OciDocument {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// This machine's architecture as OCI names it.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn oci(input: &Path, blobs: Blobs) -> Result<Parsed> {
    let mut document: OciDocument = json(&blobs.read("index.json", input)?, "index.json", input)?;
    // index.json may point at a manifest, or at an image index (one
    // manifest per platform), or at several: take the one for this
    // machine's platform (linux/amd64 or linux/arm64), else the first.
    for _ in 0..4 {
        let Some(manifests) = Some(std::mem::take(&mut document.manifests)).filter(|list| !list.is_empty()) else {
            break;
        };
        let chosen = manifests
            .iter()
            .position(|manifest| {
                manifest.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == oci_architecture())
            })
            .unwrap_or(0);
        let descriptor = &manifests[chosen];
        let blob = verified_blob(&blobs, descriptor, input)?;
        document = json(&blob, &descriptor.digest, input)?;
        if !descriptor.media_type.contains("index") && !descriptor.media_type.contains("manifest.list") {
            break;
        }
    }
    let Some(config) = document.config else {
        bail!("image {}: index.json leads to no image manifest: copy the image again", input.display());
    };
    let config: ImageConfig = json(&verified_blob(&blobs, &config, input)?, &config.digest, input)?;
    let mut layers = Vec::new();
    for layer in document.layers {
        let hex = sha256_hex(&layer.digest, input)?;
        layers.push(Layer { name: format!("blobs/sha256/{hex}"), digest: Digest::Blob(hex), size: layer.size });
    }
    if layers.is_empty() {
        bail!("image {}: its manifest lists no layers: copy the image again", input.display());
    }
    Ok(Parsed { format: Format::Oci, layers, config: config.config.unwrap_or_default().into(), blobs })
}

/// A small blob (a manifest, an index, a config), checked against its digest.
fn verified_blob(blobs: &Blobs, descriptor: &Descriptor, input: &Path) -> Result<Vec<u8>> {
    use sha2::Digest as _;
    let hex = sha256_hex(&descriptor.digest, input)?;
    let bytes = blobs.read(&format!("blobs/sha256/{hex}"), input)?;
    let got = format!("{:x}", sha2::Sha256::digest(&bytes));
    if got != hex {
        bail!(
            "image {}: blob sha256:{hex} does not match its digest (it hashes to sha256:{got}): the image is corrupt or was changed; copy it again",
            input.display()
        );
    }
    Ok(bytes)
}

/// The 64 hex digits of a `sha256:…` digest; other algorithms are refused.
fn sha256_hex(digest: &str, input: &Path) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(hex.to_string())
        }
        _ => bail!("image {}: digest {digest:?} is not a sha256 digest: copy the image again", input.display()),
    }
}

fn blob_size(blobs: &Blobs, name: &str) -> u64 {
    match blobs {
        Blobs::Dir(dir) => fs::metadata(dir.join(name)).map(|meta| meta.len()).unwrap_or(0),
        Blobs::Tar { index, .. } => index.get(&normal(name.as_bytes())).map_or(0, |(_, size)| *size),
        Blobs::Whole(file) => fs::metadata(file).map(|meta| meta.len()).unwrap_or(0),
    }
}
