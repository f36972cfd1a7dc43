//! PyTorch `torch.save` files of state dicts, read and written without libtorch or Python.
//!
//! Two containers exist:
//!
//! * **zip** (torch ≥ 1.6): an uncompressed zip archive `NAME/data.pkl` (the pickled object,
//!   whose tensors point at storages through persistent ids), `NAME/data/KEY` (raw
//!   little-endian storage bytes, 64-byte aligned), `NAME/byteorder` (`little`),
//!   `NAME/version` and a few more records;
//! * **legacy** (torch < 1.6, e.g. fastai's WikiText-103 `lstm_fwd.pth`): pickles one after
//!   the other — the magic number `0x1950a86a20f9469cfc6c`, the protocol version `1001`, a
//!   `sys_info` dict, the object, the list of storage keys — and then each storage in that
//!   order as an 8-byte element count followed by its bytes.
//!
//! Pickles are read with [`crate::pickle`], which executes nothing and refuses any global that
//! is not a tensor, a storage or plain data. Every length and offset is checked against the
//! input before it is used, so corrupt files give an error, never a panic or a huge allocation
//! (a tensor may not view more elements than its storage holds).
//!
//! [`write_state_dict`] writes the zip container as `torch.save` does (protocol-2 `data.pkl`,
//! `_rebuild_tensor_v2` + `('storage', torch.FloatStorage, key, 'cpu', numel)` persistent
//! ids, 64-byte-aligned stored records, CRC-32s), so `torch.load(..., weights_only=True)`
//! reads it.

use std::io::{self, Write};

use crate::pickle::{self, Dtype, Pickle, PickleError, Result, TensorRef, Value, Writer};

/// torch's legacy `MAGIC_NUMBER`, as the little-endian bytes of its `LONG1`.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;
/// Most bytes of tensor data read per byte of file (see [`read_state_dict`]).
pub const MAX_EXPANSION: u64 = 8;

/// A tensor's elements, contiguous (row-major), little-endian.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Which container a file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Zip,
    Legacy,
}

/// The tensors of a state dict, in file order.
#[derive(Debug, Clone)]
pub struct StateDict {
    pub container: Container,
    /// `Some("model")` when the state dict was the `model` entry of a dict (fastai's
    /// `learn.save(..., with_opt=True)` writes `{'model': ..., 'opt': ...}`).
    pub nested_in: Option<String>,
    pub tensors: Vec<(String, RawTensor)>,
}

fn content(msg: impl Into<String>) -> PickleError {
    PickleError::Content(msg.into())
}

/// Reads a `torch.save` file of a state dict (zip or legacy container), or of a dict whose
/// `model` entry is one.
pub fn read_state_dict(bytes: &[u8]) -> Result<StateDict> {
    if bytes.starts_with(b"PK\x03\x04") {
        let zip = ZipArchive::parse(bytes)?;
        let (prefix, pkl) = zip.data_pkl()?;
        if let Some(bo) = zip.get(&format!("{prefix}/byteorder")) {
            if bo != b"little" {
                return Err(content(format!(
                    "byte order {:?} is not supported (only little-endian files)",
                    String::from_utf8_lossy(bo)
                )));
            }
        }
        let p = pickle::parse(pkl).map_err(|e| prefix_err("data.pkl", e))?;
        let storage = |key: &str| -> Result<&[u8]> {
            zip.get(&format!("{prefix}/data/{key}"))
                .ok_or_else(|| content(format!("storage record data/{key} is missing")))
        };
        collect(&p, Container::Zip, bytes.len(), storage)
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        Err(content(
            "a tar-format torch file (torch < 0.4) is not supported; re-save it with a newer torch",
        ))
    } else if bytes.first() == Some(&0x80) {
        read_legacy(bytes)
    } else {
        Err(content(
            "not a torch file (neither a zip archive nor torch's legacy pickle format)",
        ))
    }
}

fn prefix_err(what: &str, e: PickleError) -> PickleError {
    match e {
        PickleError::Forbidden(_) => e,
        PickleError::Content(m) => PickleError::Content(format!("{what}: {m}")),
        other => PickleError::Content(format!("{what}: {other}")),
    }
}

fn read_legacy(bytes: &[u8]) -> Result<StateDict> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Pickle> {
        let (p, used) = pickle::parse_prefix(&bytes[pos..]).map_err(|e| prefix_err(what, e))?;
        pos += used;
        Ok(p)
    };
    let magic = next("magic number")?;
    let ok = match magic.root() {
        Value::BigInt(b) => b.as_slice() == LEGACY_MAGIC,
        _ => false,
    };
    if !ok {
        return Err(content(
            "not a torch file (a pickle, but without torch's magic number)",
        ));
    }
    let proto = next("protocol version")?;
    if proto.root() != &Value::Int(LEGACY_PROTOCOL) {
        return Err(content(
            "unsupported legacy torch protocol version (expected 1001)",
        ));
    }
    let sys = next("sys_info")?;
    if let Some(le) = sys.dict_get(sys.root, "little_endian") {
        if sys.get(le) == &Value::Bool(false) {
            return Err(content("saved on a big-endian machine; not supported"));
        }
    }
    let main = next("object")?;
    let keys = next("storage keys")?;
    let keys: Vec<String> = match keys.sequence(keys.root) {
        Some(items) => items
            .iter()
            .map(|&i| keys.as_str(i).map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| content("storage keys are not strings"))?,
        None => return Err(content("storage key list is not a list")),
    };
    // dtype of each root storage, from the persistent ids in the object
    let mut dtypes: std::collections::HashMap<&str, Dtype> = Default::default();
    for v in &main.nodes {
        if let Value::Storage(s) = v {
            if let Some(d) = dtypes.insert(&s.key, s.dtype) {
                if d != s.dtype {
                    return Err(content(format!(
                        "storage {} is read with two dtypes",
                        s.key
                    )));
                }
            }
        }
    }
    let mut storages: std::collections::HashMap<&str, &[u8]> = Default::default();
    for key in &keys {
        let dtype = *dtypes
            .get(key.as_str())
            .ok_or_else(|| content(format!("storage {key} is listed but never used")))?;
        let n = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| content(format!("truncated before storage {key}")))?;
        let n = i64::from_le_bytes(n.try_into().unwrap());
        pos += 8;
        let len = u64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size() as u64))
            .filter(|&l| l <= (bytes.len() - pos) as u64)
            .ok_or_else(|| {
                content(format!(
                    "truncated or corrupt: storage {key} of {n} elements"
                ))
            })? as usize;
        storages.insert(key, &bytes[pos..pos + len]);
        pos += len;
    }
    if pos != bytes.len() {
        return Err(content(format!(
            "{} unexpected bytes after the last storage",
            bytes.len() - pos
        )));
    }
    collect(&main, Container::Legacy, bytes.len(), |key| {
        storages
            .get(key)
            .copied()
            .ok_or_else(|| content(format!("storage {key} is not in the file")))
    })
}

/// Finds the state dict in `p` and materializes its tensors.
///
/// Tensors may share a storage (tied weights: three names, one storage), so their copies may
/// add up to more than the file; more than [`MAX_EXPANSION`] times the file is refused, so a
/// small hostile file cannot name one large storage a million times.
fn collect<'a>(
    p: &Pickle,
    container: Container,
    file_len: usize,
    storage: impl Fn(&str) -> Result<&'a [u8]>,
) -> Result<StateDict> {
    let Some(entries) = p.dict_entries(p.root) else {
        return Err(content(format!(
            "the file holds a {}, not a state dict",
            p.type_name(p.root)
        )));
    };
    let all_tensors = entries
        .iter()
        .all(|&(_, v)| matches!(p.get(v), Value::Tensor(_)));
    let (dict, nested_in) = match p.dict_get(p.root, "model") {
        Some(m) if !all_tensors && matches!(p.get(m), Value::Dict(_)) => (
            p.dict_entries(m).unwrap_or_default(),
            Some("model".to_string()),
        ),
        _ => (entries, None),
    };
    let budget = (file_len as u64).saturating_mul(MAX_EXPANSION);
    let mut total = 0u64;
    let mut tensors = Vec::with_capacity(dict.len());
    for (k, v) in dict {
        let Some(name) = p.as_str(k) else {
            return Err(content(format!(
                "a state dict key is a {}, not a string",
                p.type_name(k)
            )));
        };
        let Value::Tensor(t) = p.get(v) else {
            return Err(content(format!(
                "entry {name} is a {}, not a tensor (not a state dict)",
                p.type_name(v)
            )));
        };
        let t = materialize(t, &storage).map_err(|e| content(format!("tensor {name}: {e}")))?;
        total += t.data.len() as u64;
        if total > budget {
            return Err(content(format!(
                "the tensors view more than {MAX_EXPANSION} times the file's size (the same storage named over and over); refusing"
            )));
        }
        tensors.push((name.to_string(), t));
    }
    Ok(StateDict {
        container,
        nested_in,
        tensors,
    })
}

/// Copies the elements a (possibly strided) tensor views into a contiguous buffer.
fn materialize<'a>(
    t: &TensorRef,
    storage: &impl Fn(&str) -> Result<&'a [u8]>,
) -> Result<RawTensor> {
    let s = &t.storage;
    let es = s.dtype.size();
    let all = storage(&s.key)?;
    let root_numel = (all.len() / es) as u64;
    if s.numel > root_numel {
        return Err(content(format!(
            "storage {} holds {} elements, the file says {}",
            s.key, root_numel, s.numel
        )));
    }
    // the elements this storage may address: [base, base + avail)
    let (base, avail) = match &s.view {
        None => (0u64, s.numel),
        Some(v) => {
            if !matches!(v.offset.checked_add(v.numel), Some(e) if e <= s.numel) {
                return Err(content("storage view lies outside its storage"));
            }
            (v.offset, v.numel)
        }
    };
    let overflow = || content("tensor size overflows");
    let mut numel: u64 = 1;
    let mut last: u64 = t.offset; // highest element index + 1 relative to the view
    for (&n, &st) in t.size.iter().zip(&t.stride) {
        numel = numel.checked_mul(n).ok_or_else(overflow)?;
        if n > 0 {
            last = (n - 1)
                .checked_mul(st)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(overflow)?;
        }
    }
    if numel == 0 {
        return Ok(RawTensor {
            dtype: s.dtype,
            shape: t.size.iter().map(|&n| n as usize).collect(),
            data: Vec::new(),
        });
    }
    if last >= avail {
        return Err(content(format!(
            "views element {last} of a storage of {avail} (truncated or corrupt)"
        )));
    }
    if numel > avail {
        return Err(content(
            "views more elements than its storage holds (expanded views are not supported)",
        ));
    }
    let shape: Vec<usize> = t.size.iter().map(|&n| n as usize).collect();
    let stride: Vec<usize> = t.stride.iter().map(|&n| n as usize).collect();
    let start = ((base + t.offset) as usize) * es;
    let numel = numel as usize;
    let contiguous = {
        let mut expect = 1usize;
        let mut ok = true;
        for (&n, &st) in shape.iter().zip(&stride).rev() {
            if n != 1 && st != expect {
                ok = false;
            }
            expect *= n;
        }
        ok
    };
    let data = if contiguous {
        all[start..start + numel * es].to_vec()
    } else {
        let mut data = Vec::with_capacity(numel * es);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..numel {
            let off: usize = idx.iter().zip(&stride).map(|(i, s)| i * s).sum();
            let b = start + off * es;
            data.extend_from_slice(&all[b..b + es]);
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        data
    };
    Ok(RawTensor {
        dtype: s.dtype,
        shape,
        data,
    })
}

/// The stored (uncompressed) records of a zip archive, from its central directory.
struct ZipArchive<'a> {
    records: Vec<(String, &'a [u8])>,
    /// name → index in `records` (the first record of a name)
    index: std::collections::HashMap<String, usize>,
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn rd64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> ZipArchive<'a> {
    fn parse(b: &'a [u8]) -> Result<Self> {
        let bad = |m: &str| content(format!("corrupt zip archive: {m}"));
        // end of central directory: 22 bytes + a comment of up to 64 KiB
        let lo = b.len().saturating_sub(22 + 65535);
        let eocd = (lo..=b.len().saturating_sub(22))
            .rev()
            .find(|&i| {
                rd32(b, i) == Some(0x0605_4b50)
                    && i + 22 + rd16(b, i + 20).unwrap_or(0) as usize == b.len()
            })
            .ok_or_else(|| bad("no end-of-central-directory record (truncated?)"))?;
        let mut n = rd16(b, eocd + 10).unwrap() as u64;
        let mut cd_size = rd32(b, eocd + 12).unwrap() as u64;
        let mut cd_off = rd32(b, eocd + 16).unwrap() as u64;
        if n == 0xffff || cd_size == 0xffff_ffff || cd_off == 0xffff_ffff {
            let loc = eocd
                .checked_sub(20)
                .filter(|&l| rd32(b, l) == Some(0x0706_4b50))
                .ok_or_else(|| bad("zip64 locator missing"))?;
            let z = rd64(b, loc + 8).unwrap() as usize;
            if rd32(b, z) != Some(0x0606_4b50) {
                return Err(bad("zip64 end record missing"));
            }
            n = rd64(b, z + 32).ok_or_else(|| bad("zip64 end record truncated"))?;
            cd_size = rd64(b, z + 40).ok_or_else(|| bad("zip64 end record truncated"))?;
            cd_off = rd64(b, z + 48).ok_or_else(|| bad("zip64 end record truncated"))?;
        }
        let cd_end = cd_off
            .checked_add(cd_size)
            .filter(|&e| e <= b.len() as u64)
            .ok_or_else(|| bad("central directory outside the file"))?;
        if n > cd_size / 46 {
            return Err(bad("more entries than the central directory can hold"));
        }
        let mut records = Vec::with_capacity(n as usize);
        let mut p = cd_off as usize;
        for _ in 0..n {
            if p + 46 > cd_end as usize || rd32(b, p) != Some(0x0201_4b50) {
                return Err(bad("central directory entry missing"));
            }
            let flags = rd16(b, p + 8).unwrap();
            let method = rd16(b, p + 10).unwrap();
            let crc = rd32(b, p + 16).unwrap();
            let mut csize = rd32(b, p + 20).unwrap() as u64;
            let mut usize_ = rd32(b, p + 24).unwrap() as u64;
            let name_len = rd16(b, p + 28).unwrap() as usize;
            let extra_len = rd16(b, p + 30).unwrap() as usize;
            let comment_len = rd16(b, p + 32).unwrap() as usize;
            let mut local = rd32(b, p + 42).unwrap() as u64;
            let name = b
                .get(p + 46..p + 46 + name_len)
                .ok_or_else(|| bad("entry name truncated"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let extra = b
                .get(p + 46 + name_len..p + 46 + name_len + extra_len)
                .ok_or_else(|| bad("entry extra field truncated"))?;
            // zip64 extended information: only the fields that are 0xffffffff above
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = rd16(extra, e).unwrap();
                let len = rd16(extra, e + 2).unwrap() as usize;
                let body = extra
                    .get(e + 4..e + 4 + len)
                    .ok_or_else(|| bad("extra field truncated"))?;
                if id == 1 {
                    let mut q = 0;
                    for f in [&mut usize_, &mut csize, &mut local] {
                        if *f == 0xffff_ffff {
                            *f = rd64(body, q).ok_or_else(|| bad("zip64 field truncated"))?;
                            q += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            p += 46 + name_len + extra_len + comment_len;
            if flags & 1 != 0 {
                return Err(content(format!("zip entry {name} is encrypted")));
            }
            if method != 0 || csize != usize_ {
                return Err(content(format!("zip entry {name} is compressed (method {method}); torch stores its records uncompressed")));
            }
            let l = local as usize;
            if local >= b.len() as u64 || rd32(b, l) != Some(0x0403_4b50) {
                return Err(bad(&format!("local header of {name} missing")));
            }
            let start = (l + 30)
                .checked_add(
                    rd16(b, l + 26).unwrap_or(0) as usize + rd16(b, l + 28).unwrap_or(0) as usize,
                )
                .ok_or_else(|| bad("bad local header"))?;
            let data = (start as u64)
                .checked_add(csize)
                .filter(|&e| e <= b.len() as u64)
                .map(|e| &b[start..e as usize])
                .ok_or_else(|| content(format!("zip entry {name} is truncated")))?;
            if crc32(data) != crc {
                return Err(content(format!(
                    "zip entry {name}: CRC-32 mismatch (corrupt file)"
                )));
            }
            records.push((name, data));
        }
        let mut index = std::collections::HashMap::with_capacity(records.len());
        for (i, (name, _)) in records.iter().enumerate() {
            index.entry(name.clone()).or_insert(i);
        }
        Ok(ZipArchive { records, index })
    }

    fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.index.get(name).map(|&i| self.records[i].1)
    }

    /// `PREFIX/data.pkl` (torch names the top folder after the file).
    fn data_pkl(&self) -> Result<(String, &'a [u8])> {
        let mut found = self.records.iter().filter_map(|(n, d)| {
            let (prefix, rest) = n.split_once('/')?;
            (rest == "data.pkl").then(|| (prefix.to_string(), *d))
        });
        match (found.next(), found.next()) {
            (Some(x), None) => Ok(x),
            (None, _) => Err(content(
                "a zip archive without data.pkl (not a torch.save file)",
            )),
            (Some(_), Some(_)) => Err(content("a zip archive with several data.pkl records")),
        }
    }
}

/// CRC-32 (IEEE), as zip uses, slicing by 8 bytes.
pub fn crc32(data: &[u8]) -> u32 {
    const fn tables() -> [[u32; 256]; 8] {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut i = 0;
        while i < 256 {
            let mut j = 1;
            while j < 8 {
                let prev = t[j - 1][i];
                t[j][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                j += 1;
            }
            i += 1;
        }
        t
    }
    static T: [[u32; 256]; 8] = tables();
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        c = T[7][(lo & 0xff) as usize]
            ^ T[6][((lo >> 8) & 0xff) as usize]
            ^ T[5][((lo >> 16) & 0xff) as usize]
            ^ T[4][(lo >> 24) as usize]
            ^ T[3][(hi & 0xff) as usize]
            ^ T[2][((hi >> 8) & 0xff) as usize]
            ^ T[1][((hi >> 16) & 0xff) as usize]
            ^ T[0][(hi >> 24) as usize];
    }
    for &x in chunks.remainder() {
        c = T[0][((c ^ x as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// One state-dict entry to write: a contiguous tensor filling `storages[storage]`.
#[derive(Debug, Clone)]
pub struct TensorEntry<'a> {
    pub name: &'a str,
    pub storage: usize,
    pub shape: Vec<usize>,
}

/// Writes a state dict as `torch.save(OrderedDict(...))` does (zip container). Entries that
/// share a storage (tied weights) are written once and referenced by each name, as torch does.
/// `archive` is the top folder inside the zip (torch uses the file stem; any name loads).
pub fn write_state_dict(
    out: &mut impl Write,
    archive: &str,
    entries: &[TensorEntry],
    storages: &[(Dtype, &[u8])],
) -> io::Result<()> {
    let mut w = Writer::new();
    w.global("collections", "OrderedDict")
        .empty_tuple()
        .reduce()
        .mark();
    for e in entries {
        let (dtype, data) = storages[e.storage];
        let numel = data.len() / dtype.size();
        assert_eq!(
            e.shape.iter().product::<usize>(),
            numel,
            "{}: shape and storage differ",
            e.name
        );
        let mut stride = vec![1i64; e.shape.len()];
        for d in (0..e.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * e.shape[d + 1] as i64;
        }
        let shape: Vec<i64> = e.shape.iter().map(|&n| n as i64).collect();
        w.str(e.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .mark();
        w.mark()
            .str("storage")
            .global("torch", dtype.storage_name());
        w.str(&e.storage.to_string())
            .str("cpu")
            .int(numel as i64)
            .tuple()
            .persid();
        w.int(0)
            .tuple_of_ints(&shape)
            .tuple_of_ints(&stride)
            .bool(false);
        w.global("collections", "OrderedDict")
            .empty_tuple()
            .reduce();
        w.tuple().reduce();
    }
    w.setitems();
    let pkl = w.finish();
    let mut records: Vec<(String, &[u8])> = vec![
        (format!("{archive}/data.pkl"), &pkl),
        (format!("{archive}/byteorder"), b"little"),
    ];
    for (i, (_, data)) in storages.iter().enumerate() {
        records.push((format!("{archive}/data/{i}"), data));
    }
    records.push((format!("{archive}/version"), b"3\n"));
    write_zip(out, &records)
}

/// A zip of stored records, each 64-byte aligned as torch's writer does (padding in an extra
/// field `FB`), with zip64 records when offsets pass 4 GiB.
pub fn write_zip(out: &mut impl Write, records: &[(String, &[u8])]) -> io::Result<()> {
    const ALIGN: u64 = 64;
    let mut pos: u64 = 0;
    let mut central = Vec::new();
    for (name, data) in records {
        let crc = crc32(data);
        let len = data.len() as u64;
        let big = len >= 0xffff_ffff || pos >= 0xffff_ffff;
        // local header: 30 bytes, name, extra (zip64 sizes if big, then FB padding)
        let z64_local = if big { 20 } else { 0 };
        let unpadded = pos + 30 + name.len() as u64 + z64_local + 4;
        let pad = (ALIGN - unpadded % ALIGN) % ALIGN;
        let mut h = Vec::with_capacity(128);
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if big { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, method, time, date
        h.extend_from_slice(&crc.to_le_bytes());
        let l32 = if big { 0xffff_ffff } else { len as u32 };
        h.extend_from_slice(&l32.to_le_bytes());
        h.extend_from_slice(&l32.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&((z64_local + 4 + pad) as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if big {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&len.to_le_bytes());
            h.extend_from_slice(&len.to_le_bytes());
        }
        h.extend_from_slice(b"FB");
        h.extend_from_slice(&(pad as u16).to_le_bytes());
        h.resize(h.len() + pad as usize, b'Z');
        out.write_all(&h)?;
        out.write_all(data)?;
        // central directory entry
        let mut z64 = Vec::new();
        if big {
            z64.extend_from_slice(&len.to_le_bytes());
            z64.extend_from_slice(&len.to_le_bytes());
            z64.extend_from_slice(&pos.to_le_bytes());
        }
        let c = &mut central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&(if big { 45u16 } else { 20 }).to_le_bytes()); // made by
        c.extend_from_slice(&(if big { 45u16 } else { 20 }).to_le_bytes()); // needed
        c.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&l32.to_le_bytes());
        c.extend_from_slice(&l32.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&(if big { 4 + z64.len() as u16 } else { 0 }).to_le_bytes());
        c.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        let off32 = if big { 0xffff_ffff } else { pos as u32 };
        c.extend_from_slice(&off32.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        if big {
            c.extend_from_slice(&1u16.to_le_bytes());
            c.extend_from_slice(&(z64.len() as u16).to_le_bytes());
            c.extend_from_slice(&z64);
        }
        pos += h.len() as u64 + len;
    }
    let cd_off = pos;
    let cd_size = central.len() as u64;
    out.write_all(&central)?;
    pos += cd_size;
    let n = records.len() as u64;
    let mut t = Vec::new();
    let z64 = cd_off >= 0xffff_ffff || n >= 0xffff;
    if z64 {
        t.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        t.extend_from_slice(&44u64.to_le_bytes());
        t.extend_from_slice(&45u16.to_le_bytes());
        t.extend_from_slice(&45u16.to_le_bytes());
        t.extend_from_slice(&[0; 8]); // disk numbers
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&cd_size.to_le_bytes());
        t.extend_from_slice(&cd_off.to_le_bytes());
        t.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&pos.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
    }
    t.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    let n16 = if z64 { 0xffff } else { n as u16 };
    t.extend_from_slice(&n16.to_le_bytes());
    t.extend_from_slice(&n16.to_le_bytes());
    t.extend_from_slice(&(cd_size.min(0xffff_ffff) as u32).to_le_bytes());
    t.extend_from_slice(&(if z64 { 0xffff_ffff } else { cd_off as u32 }).to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        let emb = f32_bytes(&(0..12).map(|i| i as f32).collect::<Vec<_>>());
        let bias = f32_bytes(&[0.5, -1.5, 2.0, 1e-7]);
        let entries = [
            TensorEntry {
                name: "0.encoder.weight",
                storage: 0,
                shape: vec![4, 3],
            },
            TensorEntry {
                name: "1.decoder.weight",
                storage: 0,
                shape: vec![4, 3],
            },
            TensorEntry {
                name: "1.decoder.bias",
                storage: 1,
                shape: vec![4],
            },
        ];
        let mut out = Vec::new();
        write_state_dict(
            &mut out,
            "model",
            &entries,
            &[(Dtype::F32, &emb), (Dtype::F32, &bias)],
        )
        .unwrap();
        out
    }

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        // byte-at-a-time reference
        let mut c = !0u32;
        for &x in &long {
            c ^= x as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(crc32(&long), !c);
    }

    #[test]
    fn written_zip_reads_back_with_shared_storage_and_alignment() {
        let bytes = sample();
        let sd = read_state_dict(&bytes).unwrap();
        assert_eq!(sd.container, Container::Zip);
        assert_eq!(sd.nested_in, None);
        let names: Vec<&str> = sd.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["0.encoder.weight", "1.decoder.weight", "1.decoder.bias"]
        );
        assert_eq!(sd.tensors[0].1, sd.tensors[1].1);
        assert_eq!(sd.tensors[0].1.shape, vec![4, 3]);
        assert_eq!(sd.tensors[2].1.data, f32_bytes(&[0.5, -1.5, 2.0, 1e-7]));
        // the storage records start at multiples of 64
        let zip = ZipArchive::parse(&bytes).unwrap();
        for (name, d) in &zip.records {
            let off = d.as_ptr() as usize - bytes.as_ptr() as usize;
            assert_eq!(off % 64, 0, "{name}");
        }
    }

    #[test]
    fn corrupt_zips_are_errors_not_panics() {
        let bytes = sample();
        for n in [0, 4, 30, 100, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_state_dict(&bytes[..n]).is_err(), "truncated at {n}");
        }
        // flip a byte inside every position of the first 600 bytes and the tail
        for i in (0..600.min(bytes.len())).chain(bytes.len() - 200..bytes.len()) {
            let mut b = bytes.clone();
            b[i] ^= 0x55;
            let _ = read_state_dict(&b); // must not panic
        }
        // a storage byte changed: CRC mismatch
        let zip = ZipArchive::parse(&bytes).unwrap();
        let d = zip.get("model/data/1").unwrap();
        let off = d.as_ptr() as usize - bytes.as_ptr() as usize;
        let mut b = bytes.clone();
        b[off] ^= 1;
        let e = read_state_dict(&b).unwrap_err().to_string();
        assert!(e.contains("CRC-32 mismatch"), "{e}");
    }

    #[test]
    fn strided_and_offset_views_are_materialized() {
        // a 2×3 tensor stored transposed (stride (1, 2)) at offset 1 of a 7-element storage
        let storage = f32_bytes(&[9.0, 0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let t = TensorRef {
            storage: pickle::Storage {
                dtype: Dtype::F32,
                key: "0".into(),
                location: "cpu".into(),
                numel: 7,
                view: None,
            },
            offset: 1,
            size: vec![2, 3],
            stride: vec![1, 2],
        };
        let r = materialize(&t, &|_| Ok(&storage[..])).unwrap();
        assert_eq!(r.data, f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        // out of bounds and expanded views are refused
        let mut t2 = t.clone();
        t2.offset = 2;
        assert!(materialize(&t2, &|_| Ok(&storage[..])).is_err());
        let mut t3 = t.clone();
        t3.size = vec![1000, 1000];
        t3.stride = vec![0, 0];
        assert!(materialize(&t3, &|_| Ok(&storage[..]))
            .unwrap_err()
            .to_string()
            .contains("expanded"));
        let mut t4 = t.clone();
        t4.size = vec![u64::MAX, 3];
        assert!(materialize(&t4, &|_| Ok(&storage[..])).is_err());
    }

    /// `torch.save(OrderedDict(w=torch.arange(3.)), f, _use_new_zipfile_serialization=False)`,
    /// built by hand: magic, protocol, sys_info, object, keys, storages.
    fn legacy_sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.");
        b.extend_from_slice(b"\x80\x02M\xe9\x03.");
        b.extend_from_slice(b"\x80\x02}(X\r\x00\x00\x00little_endian\x88u.");
        let mut w = Writer::new();
        w.global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .mark();
        w.str("w")
            .global("torch._utils", "_rebuild_tensor_v2")
            .mark();
        w.mark()
            .str("storage")
            .global("torch", "FloatStorage")
            .str("94123")
            .str("cpu")
            .int(3)
            .none()
            .tuple()
            .persid();
        w.int(0).tuple_of_ints(&[3]).tuple_of_ints(&[1]).bool(false);
        w.global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .tuple()
            .reduce()
            .setitems();
        b.extend_from_slice(&w.finish());
        b.extend_from_slice(&pickle::dump_string_list(&["94123"]));
        b.extend_from_slice(&3i64.to_le_bytes());
        b.extend_from_slice(&f32_bytes(&[0.0, 1.0, 2.0]));
        b
    }

    #[test]
    fn legacy_container() {
        let b = legacy_sample();
        let sd = read_state_dict(&b).unwrap();
        assert_eq!(sd.container, Container::Legacy);
        assert_eq!(sd.tensors[0].0, "w");
        assert_eq!(sd.tensors[0].1.data, f32_bytes(&[0.0, 1.0, 2.0]));
        for n in 0..b.len() {
            assert!(read_state_dict(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(read_state_dict(&long).is_err());
    }

    #[test]
    fn one_storage_named_many_times_is_capped() {
        // 3 names on one storage (tied weights) is fine; 1000 names on a 4 KB storage is not
        let data = vec![0u8; 4096];
        for (n, ok) in [(3usize, true), (1000, false)] {
            let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let entries: Vec<TensorEntry> = names
                .iter()
                .map(|name| TensorEntry {
                    name,
                    storage: 0,
                    shape: vec![1024],
                })
                .collect();
            let mut out = Vec::new();
            write_state_dict(&mut out, "m", &entries, &[(Dtype::F32, &data)]).unwrap();
            let r = read_state_dict(&out);
            assert_eq!(r.is_ok(), ok, "{n} names");
            if !ok {
                assert!(r.unwrap_err().to_string().contains("times the file's size"));
            }
        }
    }

    /// Random byte changes and cuts of a whole zip file: errors, never panics.
    #[test]
    fn mutated_files_never_panic() {
        let n: usize = std::env::var("PICKLE_MUTATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000);
        let seeds = [sample(), legacy_sample()];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut errors = 0;
        for i in 0..n {
            let mut b = seeds[i % 2].clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % b.len();
                match next() % 3 {
                    0 => b[at] = next() as u8,
                    1 => b.truncate(at.max(1)),
                    _ => b[at] ^= 1 << (next() % 8),
                }
            }
            errors += usize::from(read_state_dict(&b).is_err());
        }
        assert!(errors > n / 2, "{errors} of {n} mutations were read");
    }

    #[test]
    fn not_a_torch_file() {
        for b in [&b"hello"[..], b"", b"\x80\x02N."] {
            assert!(read_state_dict(b)
                .unwrap_err()
                .to_string()
                .contains("not a torch file"));
        }
    }
}
