//! A pickle reader that executes nothing: PyTorch state dicts and lists of strings.
//!
//! fastai saves weights with `torch.save` (a pickled `OrderedDict` of tensors) and its vocab
//! with `pickle.dump` (a list of strings). Python's unpickler is a virtual machine whose
//! `GLOBAL` + `REDUCE` opcodes call any importable function (`posix.system` included), so
//! loading an untrusted `.pth` or `.pkl` with Python runs code. This module is a small stack
//! machine for the opcodes of protocols 2 to 5 that state dicts and string lists use. It never
//! calls anything: `GLOBAL` resolves a name against a fixed allow-list ([`Global`]) and
//! `REDUCE`/`NEWOBJ`/`BUILD`/`BINPERSID` are interpreted symbolically for those names only
//! (`OrderedDict()` is an empty dict, `torch._utils._rebuild_tensor_v2(...)` is a
//! [`TensorRef`], a persistent id `('storage', torch.FloatStorage, key, location, numel)` is a
//! [`Storage`]). Any other global is refused with [`PickleError::Forbidden`], which names it:
//! the point is to refuse, not to guess.
//!
//! Values live in an arena ([`Pickle::nodes`]) and the stack, memo and containers hold indices,
//! so `BINGET` shares an object as Python does (a later `APPEND` to a memoized list is seen by
//! every reference) and costs nothing: the arena and stack grow at most by one entry per input
//! byte. Lengths are checked against the bytes left before anything is allocated, the memo is
//! a map (a `LONG_BINPUT 4294967295` allocates nothing), `MARK` nesting is capped at
//! [`MAX_MARK_DEPTH`], tuples that `REDUCE` and persistent ids read are refused above a few
//! items before they are copied (and tensor dimensions above [`MAX_DIMS`], storage keys above
//! [`MAX_NAME`] bytes), and nothing here recurses over the values, so hostile input fails with
//! an error, never a crash, a stack overflow, a huge allocation or quadratic time.
//!
//! Entry points that take bytes (for fuzzing too): [`parse`], [`parse_prefix`],
//! [`load_string_list`], and [`crate::torch_file::read_state_dict`] for whole `.pth` files.
//!
//! [`Writer`] emits protocol-2 pickles (what `torch.save` writes), for exporting.

use std::collections::HashMap;

/// Deepest `MARK` nesting accepted (a state dict needs 3).
pub const MAX_MARK_DEPTH: usize = 1000;
/// Longest storage key, location or persistent-id tag accepted, in bytes.
pub const MAX_NAME: usize = 256;
/// Most tensor dimensions accepted (torch's own limit is 64).
pub const MAX_DIMS: usize = 64;

/// What went wrong in a pickle. Callers prefix the file name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    #[error("truncated pickle (needed {need} more bytes at byte {pos})")]
    Truncated { pos: usize, need: usize },
    #[error("unsupported pickle opcode 0x{op:02x} at byte {pos}")]
    BadOpcode { op: u8, pos: usize },
    #[error("refusing to load: the pickle references the global {0}, which is not on the allow-list of tensor and plain-data types (nothing was executed)")]
    Forbidden(String),
    #[error("invalid pickle at byte {pos}: {msg}")]
    Invalid { pos: usize, msg: String },
    /// A well-formed pickle whose content is not what the caller expects.
    #[error("{0}")]
    Content(String),
}

impl PickleError {
    fn invalid(pos: usize, msg: impl Into<String>) -> Self {
        PickleError::Invalid {
            pos,
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = PickleError> = std::result::Result<T, E>;

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// The `torch.XStorage` class name of this element type.
    pub fn storage_name(self) -> &'static str {
        match self {
            Dtype::F64 => "DoubleStorage",
            Dtype::F32 => "FloatStorage",
            Dtype::F16 => "HalfStorage",
            Dtype::BF16 => "BFloat16Storage",
            Dtype::I64 => "LongStorage",
            Dtype::I32 => "IntStorage",
            Dtype::I16 => "ShortStorage",
            Dtype::I8 => "CharStorage",
            Dtype::U8 => "ByteStorage",
            Dtype::Bool => "BoolStorage",
        }
    }
}

/// The globals a pickle may name. Everything else is [`PickleError::Forbidden`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: `OrderedDict()` is an empty dict.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`: the tensor.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(tensor, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// `torch.FloatStorage` etc. (`torch.UntypedStorage`: bytes), only inside persistent ids.
    Storage(Dtype),
    /// `torch.float32` etc.
    TorchDtype(Dtype),
    /// `fastcore.foundation.L` (fastai's list), kept as an opaque object with its state.
    FastcoreL,
}

impl Global {
    /// Resolves `module.name` against the allow-list.
    pub fn resolve(module: &str, name: &str) -> Option<Global> {
        let dtype = |n: &str| -> Option<Dtype> {
            Some(match n {
                "float64" | "double" => Dtype::F64,
                "float32" | "float" => Dtype::F32,
                "float16" | "half" => Dtype::F16,
                "bfloat16" => Dtype::BF16,
                "int64" | "long" => Dtype::I64,
                "int32" | "int" => Dtype::I32,
                "int16" | "short" => Dtype::I16,
                "int8" => Dtype::I8,
                "uint8" => Dtype::U8,
                "bool" => Dtype::Bool,
                _ => return None,
            })
        };
        let storage = |n: &str| -> Option<Dtype> {
            Some(match n {
                "DoubleStorage" => Dtype::F64,
                "FloatStorage" => Dtype::F32,
                "HalfStorage" => Dtype::F16,
                "BFloat16Storage" => Dtype::BF16,
                "LongStorage" => Dtype::I64,
                "IntStorage" => Dtype::I32,
                "ShortStorage" => Dtype::I16,
                "CharStorage" => Dtype::I8,
                "ByteStorage" | "UntypedStorage" => Dtype::U8,
                "BoolStorage" => Dtype::Bool,
                _ => return None,
            })
        };
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch._utils", "_rebuild_parameter_with_state") => {
                Some(Global::RebuildParameterWithState)
            }
            ("torch", n) => storage(n)
                .map(Global::Storage)
                .or_else(|| dtype(n).map(Global::TorchDtype)),
            ("torch.storage", "UntypedStorage") => Some(Global::Storage(Dtype::U8)),
            ("fastcore.foundation", "L") => Some(Global::FastcoreL),
            _ => None,
        }
    }
}

/// Index of a value in [`Pickle::nodes`].
pub type Id = usize;

/// A storage named by a persistent id.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub dtype: Dtype,
    /// Record name (zip format: `data/KEY`) or key in the legacy format's storage list.
    pub key: String,
    pub location: String,
    /// Elements of `dtype`.
    pub numel: u64,
    /// Legacy format only: this storage is elements `offset..offset + numel` of storage `key`
    /// (the view's own key is `view_key`).
    pub view: Option<StorageView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageView {
    pub view_key: String,
    pub offset: u64,
    pub numel: u64,
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`, not materialized.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Storage,
    /// In elements.
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// One value of the arena.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits: little-endian two's complement bytes (as `LONG1`).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    /// Entries in insertion order; a repeated key is kept twice (the last one wins on lookup,
    /// as in Python).
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(Storage),
    Tensor(TensorRef),
    /// An allowed class instantiated without running it (`NEWOBJ`), with its `BUILD` state.
    Object {
        class: Global,
        state: Option<Id>,
    },
}

/// A parsed pickle: its values and the root.
#[derive(Debug, Clone)]
pub struct Pickle {
    pub nodes: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.nodes[id]
    }

    pub fn root(&self) -> &Value {
        self.get(self.root)
    }

    pub fn as_str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Entries of a dict, with later duplicates of a string key overriding earlier ones.
    pub fn dict_entries(&self, id: Id) -> Option<Vec<(Id, Id)>> {
        let Value::Dict(entries) = self.get(id) else {
            return None;
        };
        let mut out: Vec<(Id, Id)> = Vec::with_capacity(entries.len());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for &(k, v) in entries {
            match self.as_str(k) {
                Some(s) => match seen.get(s) {
                    Some(&i) => out[i].1 = v,
                    None => {
                        seen.insert(s, out.len());
                        out.push((k, v));
                    }
                },
                None => out.push((k, v)),
            }
        }
        Some(out)
    }

    /// The value of string key `key` in dict `id`.
    pub fn dict_get(&self, id: Id, key: &str) -> Option<Id> {
        let Value::Dict(entries) = self.get(id) else {
            return None;
        };
        entries
            .iter()
            .rev()
            .find(|(k, _)| self.as_str(*k) == Some(key))
            .map(|&(_, v)| v)
    }

    /// Items of a list or tuple, or of a fastai `L` (its `items` state).
    pub fn sequence(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::List(v) | Value::Tuple(v) => Some(v),
            Value::Object {
                class: Global::FastcoreL,
                state: Some(s),
            } => {
                let items = self.dict_get(*s, "items")?;
                match self.get(items) {
                    Value::List(v) | Value::Tuple(v) => Some(v),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A short description of a value's type, for error messages.
    pub fn type_name(&self, id: Id) -> &'static str {
        match self.get(id) {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Object { .. } => "object",
        }
    }
}

/// Parses one pickle that makes up all of `bytes` (trailing bytes are an error).
pub fn parse(bytes: &[u8]) -> Result<Pickle> {
    let (p, used) = parse_prefix(bytes)?;
    if used != bytes.len() {
        return Err(PickleError::invalid(
            used,
            format!("{} bytes after the end of the pickle", bytes.len() - used),
        ));
    }
    Ok(p)
}

/// Parses the pickle at the start of `bytes`; returns it and the number of bytes it used
/// (torch's legacy format is several pickles in a row).
pub fn parse_prefix(bytes: &[u8]) -> Result<(Pickle, usize)> {
    Parser::new(bytes).run()
}

/// Reads a pickled list of strings (fastai's `itos_*.pkl`: a `list`, a `tuple` or an `L`).
pub fn load_string_list(bytes: &[u8]) -> Result<Vec<String>> {
    let p = parse(bytes)?;
    let Some(items) = p.sequence(p.root) else {
        return Err(PickleError::Content(format!(
            "expected a pickled list of strings, found a {}",
            p.type_name(p.root)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, &id)| match p.get(id) {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(PickleError::Content(format!(
                "item {i} of the list is a {}, not a string",
                p.type_name(id)
            ))),
        })
        .collect()
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    nodes: Vec<Value>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl<'a> Parser<'a> {
    fn new(b: &'a [u8]) -> Self {
        Parser {
            b,
            pos: 0,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.b.len() - self.pos;
        if n > left {
            return Err(PickleError::Truncated {
                pos: self.pos,
                need: n - left,
            });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A length field: checked against the bytes left before anything is allocated.
    fn len(&mut self, n: u64) -> Result<usize> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(PickleError::Truncated {
                pos: self.pos,
                need: (n - left).min(usize::MAX as u64) as usize,
            });
        }
        Ok(n as usize)
    }

    fn push(&mut self, v: Value) {
        self.nodes.push(v);
        self.stack.push(self.nodes.len() - 1);
    }

    fn pop(&mut self, at: usize) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(PickleError::invalid(
                at,
                "stack underflow (popped past a MARK)",
            ));
        }
        self.stack
            .pop()
            .ok_or_else(|| PickleError::invalid(at, "stack underflow"))
    }

    fn top(&self, at: usize) -> Result<Id> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(PickleError::invalid(
                at,
                "stack underflow (read past a MARK)",
            ));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| PickleError::invalid(at, "stack underflow"))
    }

    /// Pops everything above the last MARK and the mark itself.
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| PickleError::invalid(at, "no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn utf8(&self, at: usize, s: &[u8]) -> Result<String> {
        String::from_utf8(s.to_vec())
            .map_err(|_| PickleError::invalid(at, "string is not valid UTF-8"))
    }

    fn memo_get(&self, at: usize, i: u32) -> Result<Id> {
        self.memo
            .get(&i)
            .copied()
            .ok_or_else(|| PickleError::invalid(at, format!("memo entry {i} was never stored")))
    }

    fn int_of(&self, id: Id) -> Option<i64> {
        match &self.nodes[id] {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn str_of(&self, id: Id) -> Option<String> {
        match &self.nodes[id] {
            Value::Str(s) => Some(s.clone()),
            // Python 2 pickles read with encoding='bytes'
            Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }

    /// The items of a tuple of at most `max` items (longer tuples are refused before they
    /// are copied: a hostile pickle could otherwise copy one huge tuple at every REDUCE).
    fn tuple_of(&self, at: usize, id: Id, max: usize, what: &str) -> Result<Vec<Id>> {
        match &self.nodes[id] {
            Value::Tuple(v) if v.len() <= max => Ok(v.clone()),
            Value::Tuple(v) => Err(PickleError::invalid(
                at,
                format!("{what} has {} items (at most {max} expected)", v.len()),
            )),
            other => Err(PickleError::invalid(
                at,
                format!("{what} is a {}, not a tuple", kind(other)),
            )),
        }
    }

    /// A string of at most [`MAX_NAME`] bytes (storage keys, locations, tags).
    fn name_of(&self, id: Id) -> Option<String> {
        match &self.nodes[id] {
            Value::Str(s) if s.len() <= MAX_NAME => Some(s.clone()),
            Value::Bytes(b) if b.len() <= MAX_NAME => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }

    fn u64_tuple(&self, at: usize, id: Id, what: &str) -> Result<Vec<u64>> {
        let items = self.tuple_of(at, id, MAX_DIMS, &format!("tensor {what}"))?;
        items
            .iter()
            .map(|&i| match self.int_of(i) {
                Some(v) if v >= 0 => Ok(v as u64),
                _ => Err(PickleError::invalid(
                    at,
                    format!("tensor {what} holds a value that is not a non-negative integer"),
                )),
            })
            .collect()
    }

    fn global(&self, at: usize, module: &str, name: &str) -> Result<Value> {
        match Global::resolve(module, name) {
            Some(g) => Ok(Value::Global(g)),
            None => {
                let shown = |s: &str| {
                    s.chars()
                        .take(100)
                        .collect::<String>()
                        .escape_debug()
                        .to_string()
                };
                let _ = at;
                Err(PickleError::Forbidden(format!(
                    "{}.{}",
                    shown(module),
                    shown(name)
                )))
            }
        }
    }

    /// `REDUCE`: `callable(*args)` for the allowed callables, interpreted, never called.
    fn reduce(&mut self, at: usize, func: Id, args: Id) -> Result<()> {
        let Value::Global(g) = self.nodes[func] else {
            return Err(PickleError::invalid(
                at,
                format!(
                    "REDUCE on a {} (only allowed globals can be called)",
                    kind(&self.nodes[func])
                ),
            ));
        };
        let args = self.tuple_of(at, args, 7, "REDUCE arguments")?;
        match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(PickleError::invalid(
                        at,
                        "OrderedDict with arguments is not supported",
                    ));
                }
                self.push(Value::Dict(Vec::new()));
            }
            Global::RebuildTensorV2 => {
                if !(6..=7).contains(&args.len()) {
                    return Err(PickleError::invalid(
                        at,
                        format!(
                            "_rebuild_tensor_v2 with {} arguments (expected 6 or 7)",
                            args.len()
                        ),
                    ));
                }
                let Value::Storage(storage) = &self.nodes[args[0]] else {
                    return Err(PickleError::invalid(
                        at,
                        "_rebuild_tensor_v2 on something that is not a storage",
                    ));
                };
                let storage = storage.clone();
                let offset = match self.int_of(args[1]) {
                    Some(o) if o >= 0 => o as u64,
                    _ => {
                        return Err(PickleError::invalid(
                            at,
                            "tensor offset is not a non-negative integer",
                        ))
                    }
                };
                let size = self.u64_tuple(at, args[2], "size")?;
                let stride = self.u64_tuple(at, args[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(PickleError::invalid(
                        at,
                        "tensor size and stride differ in length",
                    ));
                }
                self.push(Value::Tensor(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                }));
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let n = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != n || !matches!(self.nodes[args[0]], Value::Tensor(_)) {
                    return Err(PickleError::invalid(
                        at,
                        "_rebuild_parameter on something that is not a tensor",
                    ));
                }
                self.stack.push(args[0]);
            }
            Global::FastcoreL => self.push(Value::Object {
                class: g,
                state: None,
            }),
            Global::Storage(_) | Global::TorchDtype(_) => {
                return Err(PickleError::invalid(
                    at,
                    "a torch storage or dtype cannot be called here",
                ));
            }
        }
        Ok(())
    }

    /// `BINPERSID`: torch's `('storage', storage_type, key, location, numel[, view])`.
    fn persistent(&mut self, at: usize, pid: Id) -> Result<()> {
        let t = self.tuple_of(at, pid, 6, "persistent id")?;
        let tag = t.first().and_then(|&i| self.name_of(i));
        match tag.as_deref() {
            Some("storage") => {}
            Some("module") => {
                return Err(PickleError::Content(
                    "the file pickles a whole model object (torch.save(model)); save its state_dict() instead".into(),
                ))
            }
            _ => return Err(PickleError::invalid(at, "persistent id is not a torch storage")),
        }
        if !(5..=6).contains(&t.len()) {
            return Err(PickleError::invalid(
                at,
                format!("storage persistent id with {} fields", t.len()),
            ));
        }
        let Value::Global(Global::Storage(dtype)) = self.nodes[t[1]] else {
            return Err(PickleError::invalid(
                at,
                "storage persistent id without a storage type",
            ));
        };
        let key = self.name_of(t[2]).ok_or_else(|| {
            PickleError::invalid(at, "storage key is not a string of at most 256 bytes")
        })?;
        let location = self.name_of(t[3]).ok_or_else(|| {
            PickleError::invalid(at, "storage location is not a string of at most 256 bytes")
        })?;
        let numel = match self.int_of(t[4]) {
            Some(n) if n >= 0 => n as u64,
            _ => {
                return Err(PickleError::invalid(
                    at,
                    "storage size is not a non-negative integer",
                ))
            }
        };
        let view = match t.get(5).map(|&i| &self.nodes[i]) {
            None | Some(Value::None) => None,
            Some(Value::Tuple(v)) if v.len() == 3 => {
                let view_key = self.name_of(v[0]).ok_or_else(|| {
                    PickleError::invalid(at, "storage view key is not a short string")
                })?;
                match (self.int_of(v[1]), self.int_of(v[2])) {
                    (Some(o), Some(n)) if o >= 0 && n >= 0 => Some(StorageView {
                        view_key,
                        offset: o as u64,
                        numel: n as u64,
                    }),
                    _ => {
                        return Err(PickleError::invalid(
                            at,
                            "storage view offset/size are not non-negative integers",
                        ))
                    }
                }
            }
            Some(_) => {
                return Err(PickleError::invalid(
                    at,
                    "storage view metadata is not a 3-tuple",
                ))
            }
        };
        self.push(Value::Storage(Storage {
            dtype,
            key,
            location,
            numel,
            view,
        }));
        Ok(())
    }

    fn run(mut self) -> Result<(Pickle, usize)> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(PickleError::invalid(
                            at,
                            format!("pickle protocol {v} (this reader knows 2 to 5)"),
                        ));
                    }
                }
                0x95 => {
                    // FRAME: a length hint; the opcodes inside are read as usual
                    let n = self.u64()?;
                    self.len(n)?;
                }
                b'.' => {
                    // STOP
                    if !self.marks.is_empty() {
                        return Err(PickleError::invalid(at, "STOP with an open MARK"));
                    }
                    let root = self.pop(at)?;
                    if !self.stack.is_empty() {
                        return Err(PickleError::invalid(
                            at,
                            format!("STOP with {} extra values on the stack", self.stack.len()),
                        ));
                    }
                    return Ok((
                        Pickle {
                            nodes: self.nodes,
                            root,
                        },
                        self.pos,
                    ));
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARK_DEPTH {
                        return Err(PickleError::invalid(
                            at,
                            format!("MARKs nested deeper than {MAX_MARK_DEPTH}"),
                        ));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement
                    let n = if op == 0x8a {
                        self.u8()? as u64
                    } else {
                        self.u32()? as i32 as i64 as u64
                    };
                    if op == 0x8b && (n as i64) < 0 {
                        return Err(PickleError::invalid(at, "LONG4 with a negative length"));
                    }
                    let n = self.len(n)?;
                    let bytes = self.take(n)?;
                    let v = if n == 0 {
                        Value::Int(0)
                    } else if n <= 8 {
                        let neg = bytes[n - 1] & 0x80 != 0;
                        let mut buf = [if neg { 0xff } else { 0 }; 8];
                        buf[..n].copy_from_slice(bytes);
                        Value::Int(i64::from_le_bytes(buf))
                    } else {
                        Value::BigInt(bytes.to_vec())
                    };
                    self.push(v)
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.push(Value::Float(v))
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' => {
                    // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, and Python 2's BINSTRING,
                    // SHORT_BINSTRING (read as UTF-8, as torch's legacy loader does)
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c | b'U' => self.u8()? as u64,
                        0x8d => self.u64()?,
                        _ => {
                            let n = self.u32()? as i32;
                            if n < 0 {
                                return Err(PickleError::invalid(
                                    at,
                                    "BINSTRING with a negative length",
                                ));
                            }
                            n as u64
                        }
                    };
                    let n = self.len(n)?;
                    let s = self.take(n)?;
                    let s = self.utf8(at, s)?;
                    self.push(Value::Str(s))
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len(n)?;
                    let s = self.take(n)?.to_vec();
                    self.push(Value::Bytes(s))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items))
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::Tuple(items))
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::List(items))
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::invalid(at, "DICT with an odd number of items"));
                    }
                    let pairs = items.chunks(2).map(|c| (c[0], c[1])).collect();
                    self.push(Value::Dict(pairs))
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let l = self.top(at)?;
                    self.append(at, l, &[v])?;
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    let l = self.top(at)?;
                    self.append(at, l, &items)?;
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let d = self.top(at)?;
                    self.set_items(at, d, &[k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::invalid(
                            at,
                            "SETITEMS with an odd number of items",
                        ));
                    }
                    let d = self.top(at)?;
                    self.set_items(at, d, &items)?;
                }
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let t = self.top(at)?;
                    self.stack.push(t);
                }
                b'q' | b'r' | 0x94 => {
                    let i = match op {
                        b'q' => self.u8()? as u32,
                        b'r' => self.u32()?,
                        _ => u32::try_from(self.memo.len())
                            .map_err(|_| PickleError::invalid(at, "memo is full"))?,
                    };
                    let t = self.top(at)?;
                    self.memo.insert(i, t);
                }
                b'h' | b'j' => {
                    let i = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let id = self.memo_get(at, i)?;
                    self.stack.push(id);
                }
                b'c' => {
                    let module = self.line(at)?;
                    let name = self.line(at)?;
                    let g = self.global(at, &module, &name)?;
                    self.push(g)
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Some(m), Some(n)) = (self.str_of(module), self.str_of(name)) else {
                        return Err(PickleError::invalid(
                            at,
                            "STACK_GLOBAL on values that are not strings",
                        ));
                    };
                    let g = self.global(at, &m, &n)?;
                    self.push(g)
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let func = self.pop(at)?;
                    self.reduce(at, func, args)?;
                }
                0x81 | 0x92 => {
                    // NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args), for allowed classes only
                    if op == 0x92 {
                        self.pop(at)?; // kwargs
                    }
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    if !matches!(self.nodes[args], Value::Tuple(_)) {
                        return Err(PickleError::invalid(at, "NEWOBJ arguments are not a tuple"));
                    }
                    match self.nodes[cls] {
                        Value::Global(Global::OrderedDict) => self.push(Value::Dict(Vec::new())),
                        Value::Global(g @ Global::FastcoreL) => self.push(Value::Object {
                            class: g,
                            state: None,
                        }),
                        _ => {
                            return Err(PickleError::invalid(
                                at,
                                format!(
                                    "NEWOBJ on a {} that is not an allowed class",
                                    kind(&self.nodes[cls])
                                ),
                            ))
                        }
                    }
                }
                b'b' => {
                    // BUILD: sets an object's state; dicts (OrderedDict's _metadata) and
                    // tensors (parameter attributes) keep none of it
                    let state = self.pop(at)?;
                    let obj = self.top(at)?;
                    match &mut self.nodes[obj] {
                        Value::Object { state: s, .. } => *s = Some(state),
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            return Err(PickleError::invalid(
                                at,
                                format!("BUILD on a {}", kind(other)),
                            ))
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    self.persistent(at, pid)?;
                }
                _ => return Err(PickleError::BadOpcode { op, pos: at }),
            }
        }
    }

    /// A newline-terminated ASCII line (GLOBAL's module and name).
    fn line(&mut self, at: usize) -> Result<String> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .take(256)
            .position(|&c| c == b'\n')
            .ok_or_else(|| {
                if rest.len() < 256 {
                    PickleError::Truncated {
                        pos: self.b.len(),
                        need: 1,
                    }
                } else {
                    PickleError::invalid(at, "GLOBAL name longer than 255 bytes")
                }
            })?;
        let s = self.take(n)?;
        self.pos += 1;
        self.utf8(at, s)
    }

    fn append(&mut self, at: usize, list: Id, items: &[Id]) -> Result<()> {
        match &mut self.nodes[list] {
            Value::List(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            other => Err(PickleError::invalid(
                at,
                format!("APPEND to a {}", kind(other)),
            )),
        }
    }

    fn set_items(&mut self, at: usize, dict: Id, items: &[Id]) -> Result<()> {
        match &mut self.nodes[dict] {
            Value::Dict(v) => {
                v.extend(items.chunks(2).map(|c| (c[0], c[1])));
                Ok(())
            }
            other => Err(PickleError::invalid(
                at,
                format!("SETITEM on a {}", kind(other)),
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Dict(_) => "dict",
        Value::Global(_) => "class",
        Value::Storage(_) => "storage",
        Value::Tensor(_) => "tensor",
        Value::Object { .. } => "object",
    }
}

/// Writes protocol-2 pickles with the opcodes `torch.save` uses.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a pickle (`PROTO 2`).
    pub fn new() -> Self {
        Writer { buf: vec![0x80, 2] }
    }

    pub fn mark(&mut self) -> &mut Self {
        self.buf.push(b'(');
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.buf.push(b'X');
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        if (0..256).contains(&v) {
            self.buf.extend_from_slice(&[b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.buf.push(b'M');
            self.buf.extend_from_slice(&(v as u16).to_le_bytes());
        } else if i32::try_from(v).is_ok() {
            self.buf.push(b'J');
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.extend_from_slice(&[0x8a, 8]);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(if v { 0x88 } else { 0x89 });
        self
    }

    pub fn none(&mut self) -> &mut Self {
        self.buf.push(b'N');
        self
    }

    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.buf.push(b'c');
        for s in [module, name] {
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'\n');
        }
        self
    }

    pub fn empty_tuple(&mut self) -> &mut Self {
        self.buf.push(b')');
        self
    }

    pub fn empty_list(&mut self) -> &mut Self {
        self.buf.push(b']');
        self
    }

    /// `TUPLE`: everything since the last mark.
    pub fn tuple(&mut self) -> &mut Self {
        self.buf.push(b't');
        self
    }

    pub fn tuple_of_ints(&mut self, v: &[i64]) -> &mut Self {
        self.mark();
        for &x in v {
            self.int(x);
        }
        self.tuple()
    }

    pub fn reduce(&mut self) -> &mut Self {
        self.buf.push(b'R');
        self
    }

    pub fn persid(&mut self) -> &mut Self {
        self.buf.push(b'Q');
        self
    }

    pub fn setitems(&mut self) -> &mut Self {
        self.buf.push(b'u');
        self
    }

    pub fn appends(&mut self) -> &mut Self {
        self.buf.push(b'e');
        self
    }

    /// Ends the pickle (`STOP`) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'.');
        self.buf
    }
}

/// A protocol-2 pickle of a list of strings (fastai's `itos` file).
pub fn dump_string_list<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    let mut w = Writer::new();
    w.empty_list();
    // APPENDS in batches of 1000, as Python's pickler does
    for chunk in items.chunks(1000) {
        w.mark();
        for s in chunk {
            w.str(s.as_ref());
        }
        w.appends();
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    // pickle.dumps(['xxunk', 'xxpad', 'ééé'], protocol=2)
    const LIST_P2: &[u8] = b"\x80\x02]q\x00(X\x05\x00\x00\x00xxunkq\x01X\x05\x00\x00\x00xxpadq\x02X\x06\x00\x00\x00\xc3\xa9\xc3\xa9\xc3\xa9q\x03e.";
    // the same with protocol=4: FRAME, SHORT_BINUNICODE, MEMOIZE
    const LIST_P4: &[u8] = b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x05xxunk\x94\x8c\x05xxpad\x94\x8c\x06\xc3\xa9\xc3\xa9\xc3\xa9\x94e.";

    #[test]
    fn string_lists_of_protocols_2_and_4() {
        for b in [LIST_P2, LIST_P4] {
            assert_eq!(load_string_list(b).unwrap(), vec!["xxunk", "xxpad", "ééé"]);
        }
    }

    #[test]
    fn writer_round_trip_of_a_string_list() {
        let items: Vec<String> = (0..2500).map(|i| format!("w{i}")).collect();
        assert_eq!(load_string_list(&dump_string_list(&items)).unwrap(), items);
        assert_eq!(
            load_string_list(&dump_string_list::<&str>(&[])).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn fastcore_l_is_read_as_its_items() {
        // pickle.dumps(L(['a', 'b']), protocol=2)
        let b = b"\x80\x02cfastcore.foundation\nL\nq\x00)\x81q\x01}q\x02X\x05\x00\x00\x00itemsq\x03]q\x04(X\x01\x00\x00\x00aq\x05X\x01\x00\x00\x00bq\x06esb.";
        assert_eq!(load_string_list(b).unwrap(), vec!["a", "b"]);
    }

    /// A state dict entry as torch 2.11 writes it (zip format, protocol 2).
    fn tensor_pickle() -> Vec<u8> {
        let mut w = Writer::new();
        w.global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .mark();
        w.str("0.encoder.weight")
            .global("torch._utils", "_rebuild_tensor_v2")
            .mark();
        w.mark()
            .str("storage")
            .global("torch", "FloatStorage")
            .str("0")
            .str("cpu")
            .int(128)
            .tuple()
            .persid();
        w.int(0)
            .tuple_of_ints(&[16, 8])
            .tuple_of_ints(&[8, 1])
            .bool(false);
        w.global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .tuple()
            .reduce();
        w.setitems();
        w.finish()
    }

    #[test]
    fn state_dict_tensor_is_read_symbolically() {
        let p = parse(&tensor_pickle()).unwrap();
        let e = p.dict_entries(p.root).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(p.as_str(e[0].0), Some("0.encoder.weight"));
        let Value::Tensor(t) = p.get(e[0].1) else {
            panic!("not a tensor")
        };
        assert_eq!(t.size, vec![16, 8]);
        assert_eq!(t.stride, vec![8, 1]);
        assert_eq!(t.storage.dtype, Dtype::F32);
        assert_eq!(t.storage.key, "0");
        assert_eq!(t.storage.numel, 128);
    }

    #[test]
    fn os_system_reduce_is_refused_and_named() {
        // pickle.dumps of an object whose __reduce__ returns (os.system, ('echo pwned',))
        let b = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let e = parse(b).unwrap_err();
        assert_eq!(e, PickleError::Forbidden("posix.system".into()));
        assert!(e.to_string().contains("posix.system"), "{e}");
        // the same through STACK_GLOBAL (protocol 4)
        let b = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
        assert_eq!(
            parse(b).unwrap_err(),
            PickleError::Forbidden("os.system".into())
        );
        // builtins.eval, and a torch name that is not on the list
        let b = b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.";
        assert_eq!(
            parse(b).unwrap_err(),
            PickleError::Forbidden("builtins.eval".into())
        );
        let b = b"\x80\x02ctorch\nload\n.";
        assert_eq!(
            parse(b).unwrap_err(),
            PickleError::Forbidden("torch.load".into())
        );
    }

    #[test]
    fn calling_anything_but_an_allowed_global_is_refused() {
        // REDUCE on a string; NEWOBJ on a storage class; INST/OBJ/EXT opcodes
        assert!(matches!(
            parse(b"\x80\x02X\x01\x00\x00\x00x)R.").unwrap_err(),
            PickleError::Invalid { .. }
        ));
        assert!(matches!(
            parse(b"\x80\x02ctorch\nFloatStorage\n)\x81.").unwrap_err(),
            PickleError::Invalid { .. }
        ));
        for op in [
            b'i', b'o', 0x82, 0x83, 0x84, b'P', b'I', b'S', b'V', b'p', b'g',
        ] {
            assert_eq!(
                parse(&[0x80, 2, op, b'.']).unwrap_err(),
                PickleError::BadOpcode { op, pos: 2 }
            );
        }
    }

    #[test]
    fn truncated_input_at_every_length_is_an_error() {
        let full = tensor_pickle();
        for n in 0..full.len() {
            let e = parse(&full[..n]).unwrap_err();
            assert!(
                matches!(
                    e,
                    PickleError::Truncated { .. } | PickleError::Invalid { .. }
                ),
                "{n}: {e:?}"
            );
        }
        for n in 0..LIST_P4.len() {
            assert!(load_string_list(&LIST_P4[..n]).is_err());
        }
    }

    #[test]
    fn bad_opcodes_and_stack_errors() {
        assert_eq!(
            parse(b"\x80\x02\xff.").unwrap_err(),
            PickleError::BadOpcode { op: 0xff, pos: 2 }
        );
        assert!(parse(b"\x80\x02.").is_err()); // STOP on an empty stack
        assert!(parse(b"\x80\x02NN.").is_err()); // two values left
        assert!(parse(b"\x80\x02(N.").is_err()); // open MARK
        assert!(parse(b"\x80\x02e.").is_err()); // APPENDS without MARK
        assert!(parse(b"\x80\x02](Na.").is_err()); // APPEND reaching under a MARK
        assert!(parse(b"\x80\x02Na.").is_err()); // APPEND to None
        assert!(parse(b"\x80\x02h\x07.").is_err()); // BINGET of a missing memo entry
        assert!(parse(b"\x80\x09N.").is_err()); // protocol 9
        assert!(parse(b"\x80\x02N.junk").is_err()); // trailing bytes
        assert!(parse(b"\x80\x02X\x02\x00\x00\x00\xff\xfe.").is_err()); // not UTF-8
    }

    #[test]
    fn huge_length_fields_allocate_nothing() {
        let cases: [&[u8]; 6] = [
            b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7fabc",
            b"\x80\x02X\xff\xff\xff\xffabc",
            b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffabc",
            b"\x80\x02\x8b\xff\xff\xff\x7fabc",
            b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff]",
            b"\x80\x02Nr\xff\xff\xff\xffj\xff\xff\xff\xff0.",
        ];
        for b in &cases[..5] {
            assert!(
                matches!(parse(b).unwrap_err(), PickleError::Truncated { .. }),
                "{b:?}"
            );
        }
        // LONG_BINPUT 4294967295 is a map entry, not a 4 G memo
        assert!(parse(cases[5]).is_ok());
    }

    #[test]
    fn deep_nesting_is_capped_or_iterative() {
        // MARKs beyond the cap
        let mut b = vec![0x80, 2];
        b.resize(b.len() + MAX_MARK_DEPTH + 1, b'(');
        assert!(parse(&b).unwrap_err().to_string().contains("nested deeper"));
        // a million lists nested by APPEND (no MARK): parsed iteratively, no stack overflow
        let n = 1_000_000;
        let mut b = vec![0x80, 2];
        b.resize(b.len() + n, b']');
        b.resize(b.len() + n - 1, b'a');
        b.push(b'.');
        let p = parse(&b).unwrap();
        assert_eq!(p.nodes.len(), n);
        // a list appended to itself (a cycle) is fine too
        let p = parse(b"\x80\x02]q\x00h\x00a.").unwrap();
        assert_eq!(p.root(), &Value::List(vec![0]));
    }

    #[test]
    fn memo_shares_objects_like_python() {
        // l = []; d = [l, l]; l.append(1)  → both references see the append
        let b = b"\x80\x02]q\x000]q\x01(h\x00h\x00eh\x00K\x01a0.";
        let p = parse(b).unwrap();
        let Value::List(outer) = p.root() else {
            panic!()
        };
        assert_eq!(outer.len(), 2);
        assert_eq!(p.get(outer[0]), &Value::List(vec![p.nodes.len() - 1]));
        assert_eq!(outer[0], outer[1]);
    }

    #[test]
    fn repeated_references_to_big_values_are_not_copied() {
        // a 100k-item tuple, then REDUCE(OrderedDict, that tuple) via BINGET: refused at once
        let mut b = vec![0x80, 2, b'('];
        b.resize(b.len() + 100_000, b'N');
        b.extend_from_slice(b"tq\x00ccollections\nOrderedDict\nh\x00R.");
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.contains("at most 7"), "{e}");
        // a 100k-dimension size tuple
        let mut w = Writer::new();
        w.global("torch._utils", "_rebuild_tensor_v2").mark();
        w.mark()
            .str("storage")
            .global("torch", "FloatStorage")
            .str("0")
            .str("cpu")
            .int(1)
            .tuple()
            .persid();
        w.int(0)
            .tuple_of_ints(&vec![1; 100_000])
            .tuple_of_ints(&[1])
            .bool(false)
            .none()
            .tuple()
            .reduce();
        let e = parse(&w.finish()).unwrap_err().to_string();
        assert!(e.contains("tensor size has 100000 items"), "{e}");
        // a storage key of 1 MB
        let mut w = Writer::new();
        let key = "k".repeat(1 << 20);
        w.mark()
            .str("storage")
            .global("torch", "FloatStorage")
            .str(&key)
            .str("cpu")
            .int(1)
            .tuple()
            .persid();
        let e = parse(&w.finish()).unwrap_err().to_string();
        assert!(e.contains("storage key"), "{e}");
    }

    /// Random byte changes, insertions and cuts of real pickles: errors, never panics.
    #[test]
    fn mutated_pickles_never_panic() {
        let n: usize = std::env::var("PICKLE_MUTATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let seeds = [tensor_pickle(), LIST_P4.to_vec(), LIST_P2.to_vec()];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut errors = 0;
        for i in 0..n {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len().max(1);
                match next() % 4 {
                    0 => b[at] = next() as u8,
                    1 => b.insert(at, next() as u8),
                    2 => b.truncate(at),
                    _ => b[at] ^= 1 << (next() % 8),
                }
                if b.is_empty() {
                    break;
                }
            }
            errors += usize::from(parse(&b).is_err());
            let _ = load_string_list(&b);
        }
        assert!(errors > n / 2, "{errors} of {n} mutations failed to parse");
    }

    #[test]
    fn big_ints_and_floats() {
        // LONG1 of torch's legacy magic number 0x1950a86a20f9469cfc6c
        let b = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        let p = parse(b).unwrap();
        assert_eq!(
            p.root(),
            &Value::BigInt(b"l\xfc\x9cF\xf9 j\xa8P\x19".to_vec())
        );
        assert_eq!(
            parse(b"\x80\x02\x8a\x01\xff.").unwrap().root(),
            &Value::Int(-1)
        );
        assert_eq!(
            parse(b"\x80\x02J\xff\xff\xff\xff.").unwrap().root(),
            &Value::Int(-1)
        );
        assert_eq!(
            parse(b"\x80\x02G?\xf0\x00\x00\x00\x00\x00\x00.")
                .unwrap()
                .root(),
            &Value::Float(1.0)
        );
        let mut w = Writer::new();
        w.mark()
            .int(5)
            .int(300)
            .int(70000)
            .int(-3)
            .int(1 << 40)
            .tuple();
        let p = parse(&w.finish()).unwrap();
        let Value::Tuple(v) = p.root() else { panic!() };
        let got: Vec<&Value> = v.iter().map(|&i| p.get(i)).collect();
        assert_eq!(
            got,
            [
                &Value::Int(5),
                &Value::Int(300),
                &Value::Int(70000),
                &Value::Int(-3),
                &Value::Int(1 << 40)
            ]
        );
    }

    #[test]
    fn content_errors_name_what_was_found() {
        let e = load_string_list(b"\x80\x02}.").unwrap_err().to_string();
        assert!(e.contains("found a dict"), "{e}");
        let e = load_string_list(b"\x80\x02]K\x01a.")
            .unwrap_err()
            .to_string();
        assert!(e.contains("item 0") && e.contains("int"), "{e}");
    }
}
