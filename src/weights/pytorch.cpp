#include "weights/pytorch.h"

#include <minizip/unzip.h>

#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <fmt/ranges.h>

#include "core/error.h"

namespace kaival::weights {

namespace {

// ---------------------------------------------------------------------------
// Restricted unpickler. Values live in an arena and refer to each other by
// index, so cyclic or deeply nested pickles cannot leak or recurse on
// destruction; walking them is depth-bounded.

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class GlobalKind : uint8_t { OrderedDict, RebuildTensor, RebuildParameter, StorageType };

struct Obj {
  Kind kind = Kind::None;
  GlobalKind global = GlobalKind::OrderedDict;
  DType dtype = DType::F32;            // StorageType global, Storage
  int64_t i = 0;                       // Int, Bool; Storage: numel; Tensor: storage offset
  double f = 0;                        // Float
  std::string s;                       // Str; Global: "module.name"; Storage: key
  std::vector<uint32_t> items;         // Tuple/List; Dict: key, value, key, value...;
                                       // Storage: [type global]; Tensor: [storage]
  std::vector<int64_t> shape, stride;  // Tensor
};

struct StorageName {
  std::string_view name;
  DType dtype;
};
constexpr StorageName kStorageTypes[] = {
    {"FloatStorage", DType::F32}, {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16}, {"CharStorage", DType::I8}, {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL},
};

// Pickle opcodes (the subset state dicts use).
namespace op {
constexpr uint8_t MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', BININT = 'J', BININT1 = 'K',
                  BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R', BINSTRING = 'T',
                  SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c',
                  APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j', EMPTY_LIST = ']', BINPUT = 'q',
                  LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u',
                  BINFLOAT = 'G', EMPTY_DICT = '}', PROTO = 0x80, LONG1 = 0x8a, TUPLE1 = 0x85,
                  TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89,
                  SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, STACK_GLOBAL = 0x93, MEMOIZE = 0x94,
                  FRAME = 0x95;
}  // namespace op

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> data, const std::string& where, const UnpickleLimits& limits)
      : data_(data), where_(where), limits_(limits) {}

  std::vector<PickledTensor> run() {
    uint32_t root = execute();
    std::vector<PickledTensor> out;
    std::unordered_set<std::string> seen;
    const Obj& r = objs_[root];
    if (r.kind != Kind::Dict) fail(where_, "pickle does not hold a state dict (a dict of tensors)");
    collect(root, "", 0, out, seen);
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(where_, "pickle offset {}: {}", op_pos_, what);
  }

  const uint8_t* take(size_t n) {
    if (n > data_.size() - pos_) bad("truncated pickle");
    const uint8_t* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | p[k];
    return v;
  }
  std::string read_line() {
    size_t start = pos_;
    while (pos_ < data_.size() && data_[pos_] != '\n') {
      if (pos_ - start > 256) bad("GLOBAL name too long");
      ++pos_;
    }
    if (pos_ >= data_.size()) bad("truncated GLOBAL");
    std::string s(reinterpret_cast<const char*>(data_.data() + start), pos_ - start);
    ++pos_;
    return s;
  }

  uint32_t make(Obj o) {
    if (objs_.size() >= limits_.max_objects) bad("too many objects");
    objs_.push_back(std::move(o));
    return static_cast<uint32_t>(objs_.size() - 1);
  }
  uint32_t make_int(int64_t v) {
    Obj o;
    o.kind = Kind::Int;
    o.i = v;
    return make(std::move(o));
  }
  uint32_t make_str(std::string s) {
    Obj o;
    o.kind = Kind::Str;
    o.s = std::move(s);
    return make(std::move(o));
  }
  void push(uint32_t v) {
    if (stack_.size() >= limits_.max_stack) bad("stack too deep");
    stack_.push_back(v);
  }
  uint32_t pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("stack underflow");
    uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  uint32_t top() const {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("stack underflow");
    return stack_.back();
  }
  std::vector<uint32_t> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> items(stack_.begin() + static_cast<ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t idx) {
    if (memo_.size() >= limits_.max_memo && !memo_.count(idx)) bad("memo too large");
    memo_[idx] = top();
  }
  uint32_t memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad(fmt::format("memo key {} not found", idx));
    return it->second;
  }
  uint32_t make_tuple(std::vector<uint32_t> items) {
    Obj o;
    o.kind = Kind::Tuple;
    o.items = std::move(items);
    return make(std::move(o));
  }

  uint32_t make_global(const std::string& module, const std::string& name) {
    Obj g;
    g.kind = Kind::Global;
    g.s = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      g.global = GlobalKind::OrderedDict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      g.global = GlobalKind::RebuildTensor;
    } else if (module == "torch._utils" &&
               (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")) {
      g.global = GlobalKind::RebuildParameter;
    } else {
      bool found = false;
      if (module == "torch")
        for (const auto& st : kStorageTypes)
          if (st.name == name) {
            g.global = GlobalKind::StorageType;
            g.dtype = st.dtype;
            found = true;
          }
      if (!found)
        fail<UnsupportedError>(where_,
                               "pickle offset {}: refusing global '{}': only the globals of a PyTorch "
                               "state dict are allowed, nothing is executed",
                               op_pos_, g.s);
    }
    return make(std::move(g));
  }

  const Obj& as(uint32_t idx, Kind k, const char* what) const {
    const Obj& o = objs_[idx];
    if (o.kind != k) bad(fmt::format("expected {}", what));
    return o;
  }
  std::vector<int64_t> int_tuple(uint32_t idx, const char* what) const {
    const Obj& t = objs_[idx];
    if (t.kind != Kind::Tuple && t.kind != Kind::List) bad(fmt::format("{} is not a tuple", what));
    std::vector<int64_t> v;
    for (uint32_t e : t.items) v.push_back(as(e, Kind::Int, what).i);
    return v;
  }

  uint32_t reduce(uint32_t callable, uint32_t args_idx) {
    const Obj& fn = objs_[callable];
    if (fn.kind != Kind::Global) bad("REDUCE on something that is not an allowed global");
    const Obj& args = as(args_idx, Kind::Tuple, "argument tuple for REDUCE");
    const std::vector<uint32_t> a = args.items;
    switch (fn.global) {
      case GlobalKind::OrderedDict: {
        if (!a.empty()) bad("OrderedDict called with arguments");
        Obj d;
        d.kind = Kind::Dict;
        return make(std::move(d));
      }
      case GlobalKind::RebuildTensor: {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.size() < 6 || a.size() > 7) bad("_rebuild_tensor_v2 expects 6 or 7 arguments");
        as(a[0], Kind::Storage, "a storage as _rebuild_tensor_v2's first argument");
        Obj t;
        t.kind = Kind::Tensor;
        t.items = {a[0]};
        t.i = as(a[1], Kind::Int, "an integer storage offset").i;
        t.shape = int_tuple(a[2], "tensor size");
        t.stride = int_tuple(a[3], "tensor stride");
        return make(std::move(t));
      }
      case GlobalKind::RebuildParameter: {
        // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
        if (a.size() < 3 || a.size() > 4) bad("_rebuild_parameter expects 3 or 4 arguments");
        as(a[0], Kind::Tensor, "a tensor as _rebuild_parameter's first argument");
        return a[0];
      }
      case GlobalKind::StorageType:
        break;
    }
    bad(fmt::format("calling '{}' is not allowed", fn.s));
  }

  uint32_t persistent_load(uint32_t pid_idx) {
    // ('storage', storage_type, key, location, numel)
    const Obj& pid = as(pid_idx, Kind::Tuple, "a tuple as persistent id");
    if (pid.items.size() != 5) bad("persistent id is not ('storage', type, key, location, numel)");
    if (as(pid.items[0], Kind::Str, "'storage' tag").s != "storage") bad("persistent id is not a storage");
    const Obj& type = objs_[pid.items[1]];
    if (type.kind != Kind::Global || type.global != GlobalKind::StorageType)
      bad("persistent id names no storage type");
    Obj st;
    st.kind = Kind::Storage;
    st.dtype = type.dtype;
    st.items = {pid.items[1]};
    st.s = as(pid.items[2], Kind::Str, "a string storage key").s;
    as(pid.items[3], Kind::Str, "a string storage location");
    st.i = as(pid.items[4], Kind::Int, "an integer storage size").i;
    if (st.i < 0) bad("negative storage size");
    return make(std::move(st));
  }

  uint32_t execute() {
    pos_ = 0;
    for (;;) {
      op_pos_ = pos_;
      uint8_t code = *take(1);
      switch (code) {
        case op::PROTO: {
          uint8_t v = *take(1);
          if (v > 5) bad(fmt::format("unsupported pickle protocol {}", v));
          break;
        }
        case op::FRAME:
          take(8);  // frames only group opcodes; the data is read in place
          break;
        case op::STOP: {
          uint32_t r = pop();
          return r;
        }
        case op::MARK:
          if (marks_.size() >= limits_.max_stack) bad("too many MARKs");
          marks_.push_back(stack_.size());
          break;
        case op::POP:
          pop();
          break;
        case op::POP_MARK:
          pop_mark();
          break;
        case op::NONE: {
          push(make(Obj{}));
          break;
        }
        case op::NEWTRUE:
        case op::NEWFALSE: {
          Obj o;
          o.kind = Kind::Bool;
          o.i = code == op::NEWTRUE;
          push(make(std::move(o)));
          break;
        }
        case op::BININT:
          push(make_int(static_cast<int32_t>(read_le(4))));
          break;
        case op::BININT1:
          push(make_int(static_cast<int64_t>(read_le(1))));
          break;
        case op::BININT2:
          push(make_int(static_cast<int64_t>(read_le(2))));
          break;
        case op::LONG1: {
          size_t n = *take(1);
          if (n > 8) bad("integer wider than 64 bits");
          uint64_t v = n ? read_le(n) : 0;
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);  // sign-extend
          push(make_int(static_cast<int64_t>(v)));
          break;
        }
        case op::BINFLOAT: {
          const uint8_t* p = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];  // big-endian
          Obj o;
          o.kind = Kind::Float;
          std::memcpy(&o.f, &bits, 8);
          push(make(std::move(o)));
          break;
        }
        case op::BINUNICODE:
        case op::SHORT_BINUNICODE:
        case op::BINUNICODE8:
        case op::BINSTRING:
        case op::SHORT_BINSTRING: {
          size_t width = (code == op::SHORT_BINUNICODE || code == op::SHORT_BINSTRING) ? 1
                         : code == op::BINUNICODE8                                    ? 8
                                                                                      : 4;
          uint64_t n = read_le(width);
          if (n > data_.size() - pos_) bad("string runs past the end of the pickle");
          const uint8_t* p = take(static_cast<size_t>(n));
          push(make_str(std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n))));
          break;
        }
        case op::EMPTY_TUPLE:
          push(make_tuple({}));
          break;
        case op::EMPTY_LIST:
        case op::EMPTY_DICT: {
          Obj o;
          o.kind = code == op::EMPTY_LIST ? Kind::List : Kind::Dict;
          push(make(std::move(o)));
          break;
        }
        case op::TUPLE:
          push(make_tuple(pop_mark()));
          break;
        case op::TUPLE1:
        case op::TUPLE2:
        case op::TUPLE3: {
          size_t n = static_cast<size_t>(code - op::TUPLE1 + 1);
          std::vector<uint32_t> items(n);
          for (size_t k = n; k-- > 0;) items[k] = pop();
          push(make_tuple(std::move(items)));
          break;
        }
        case op::BINPUT:
          memo_put(read_le(1));
          break;
        case op::LONG_BINPUT:
          memo_put(read_le(4));
          break;
        case op::MEMOIZE:
          memo_put(memo_.size());
          break;
        case op::BINGET:
          push(memo_get(read_le(1)));
          break;
        case op::LONG_BINGET:
          push(memo_get(read_le(4)));
          break;
        case op::SETITEM: {
          uint32_t v = pop(), k = pop();
          add_items(top(), Kind::Dict, {k, v});
          break;
        }
        case op::SETITEMS: {
          std::vector<uint32_t> kv = pop_mark();
          if (kv.size() % 2) bad("SETITEMS with an odd number of items");
          add_items(top(), Kind::Dict, std::move(kv));
          break;
        }
        case op::APPEND: {
          uint32_t v = pop();
          add_items(top(), Kind::List, {v});
          break;
        }
        case op::APPENDS:
          add_items_after_mark(Kind::List);
          break;
        case op::GLOBAL: {
          std::string module = read_line();
          std::string name = read_line();
          push(make_global(module, name));
          break;
        }
        case op::STACK_GLOBAL: {
          uint32_t name = pop(), module = pop();
          std::string m = as(module, Kind::Str, "a module name for STACK_GLOBAL").s;
          std::string n = as(name, Kind::Str, "a name for STACK_GLOBAL").s;
          push(make_global(m, n));
          break;
        }
        case op::REDUCE: {
          uint32_t args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case op::BINPERSID:
          push(persistent_load(pop()));
          break;
        case op::BUILD: {
          // OrderedDict state (e.g. the state dict's _metadata) and tensor
          // state carry nothing kaival needs; anything else is refused.
          pop();
          Kind k = objs_[top()].kind;
          if (k != Kind::Dict && k != Kind::Tensor) bad("BUILD on an object that is not a dict or tensor");
          break;
        }
        default:
          fail<UnsupportedError>(where_, "pickle offset {}: unsupported pickle opcode 0x{:02x}", op_pos_,
                                 code);
      }
    }
  }

  void add_items(uint32_t target, Kind k, std::vector<uint32_t> items) {
    Obj& o = objs_[target];
    if (o.kind != k) bad(k == Kind::Dict ? "SETITEM on something that is not a dict"
                                         : "APPEND on something that is not a list");
    o.items.insert(o.items.end(), items.begin(), items.end());
  }
  void add_items_after_mark(Kind k) {
    std::vector<uint32_t> items = pop_mark();
    add_items(top(), k, std::move(items));
  }

  std::string key_string(uint32_t idx) const {
    const Obj& k = objs_[idx];
    if (k.kind == Kind::Str) return k.s;
    if (k.kind == Kind::Int) return std::to_string(k.i);
    bad("state dict key is not a string or integer");
  }

  // Walks nested dicts for tensors. The pickle may share or cycle dicts, so
  // the walk refuses cycles and bounds its total work.
  void collect(uint32_t dict, const std::string& prefix, int depth, std::vector<PickledTensor>& out,
               std::unordered_set<std::string>& seen) {
    if (depth > limits_.max_depth) fail(where_, "state dict nested deeper than {} levels", limits_.max_depth);
    if (!path_.insert(dict).second) fail(where_, "state dict contains itself");
    const Obj& d = objs_[dict];
    for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
      if (++visits_ > limits_.max_objects) fail(where_, "state dict too large to walk");
      std::string name = prefix + key_string(d.items[k]);
      if (name.size() > 4096) fail(where_, "tensor name longer than 4096 bytes");
      const Obj& v = objs_[d.items[k + 1]];
      if (v.kind == Kind::Dict) {
        collect(d.items[k + 1], name + ".", depth + 1, out, seen);
      } else if (v.kind == Kind::Tensor) {
        if (!seen.insert(name).second) fail(where_, "duplicate tensor name '{}'", name);
        const Obj& st = objs_[v.items[0]];
        PickledTensor t;
        t.name = std::move(name);
        t.dtype = st.dtype;
        t.storage_type = objs_[st.items[0]].s.substr(std::string_view("torch.").size());
        t.storage_key = st.s;
        t.storage_numel = st.i;
        t.storage_offset = v.i;
        t.shape = v.shape;
        t.stride = v.stride;
        out.push_back(std::move(t));
      }
      // Other values (epoch counters, config strings) are not tensors: skipped.
    }
    path_.erase(dict);
  }

  std::span<const uint8_t> data_;
  const std::string& where_;
  UnpickleLimits limits_;
  size_t pos_ = 0, op_pos_ = 0;
  std::deque<Obj> objs_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::unordered_set<uint32_t> path_;  // dicts on the current walk
  size_t visits_ = 0;
};

// ---------------------------------------------------------------------------
// Zip archive

struct ZipEntry {
  uint64_t offset = 0;  // absolute offset of the entry's data
  uint64_t size = 0;
};

struct ZipCloser {
  void operator()(void* z) const { unzClose(z); }
};

std::map<std::string, ZipEntry> list_zip(const MappedFile& f) {
  const std::string& where = f.path();
  std::unique_ptr<void, ZipCloser> zip(unzOpen64(f.path().c_str()));
  if (!zip) fail(where, "cannot read the zip archive (corrupt or truncated)");
  std::map<std::string, ZipEntry> entries;
  int rc = unzGoToFirstFile(zip.get());
  while (rc == UNZ_OK) {
    unz_file_info64 info{};
    char name[1024];
    if (unzGetCurrentFileInfo64(zip.get(), &info, name, sizeof name, nullptr, 0, nullptr, 0) != UNZ_OK)
      fail(where, "corrupt zip central directory");
    if (info.size_filename >= sizeof name) fail(where, "zip entry name too long");
    std::string entry(name, info.size_filename);
    if (info.flag & 1) fail<UnsupportedError>(where, "zip entry '{}' is encrypted", entry);
    if (info.compression_method != 0)
      fail<UnsupportedError>(where,
                             "zip entry '{}' is compressed (method {}); torch.save stores entries "
                             "uncompressed so they can be memory-mapped",
                             entry, info.compression_method);
    if (info.compressed_size != info.uncompressed_size)
      fail(where, "zip entry '{}' is stored with differing sizes", entry);
    if (unzOpenCurrentFile(zip.get()) != UNZ_OK) fail(where, "cannot open zip entry '{}'", entry);
    uint64_t offset = unzGetCurrentFileZStreamPos64(zip.get());
    unzCloseCurrentFile(zip.get());
    if (offset > f.size() || info.uncompressed_size > f.size() - offset)
      fail(where, "zip entry '{}' lies outside the file", entry);
    if (!entries.emplace(entry, ZipEntry{offset, info.uncompressed_size}).second)
      fail(where, "duplicate zip entry '{}'", entry);
    rc = unzGoToNextFile(zip.get());
  }
  if (rc != UNZ_END_OF_LIST_OF_FILE) fail(where, "corrupt zip central directory");
  return entries;
}

bool contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& stride) {
  int64_t expect = 1;
  for (size_t k = shape.size(); k-- > 0;) {
    if (shape[k] != 1 && stride[k] != expect) return false;  // size-1 dims may have any stride
    expect *= shape[k];
  }
  return true;
}

}  // namespace

std::vector<PickledTensor> unpickle_state_dict(std::span<const uint8_t> pickle, const std::string& where,
                                               const UnpickleLimits& limits) {
  return Unpickler(pickle, where, limits).run();
}

std::vector<TensorInfo> read_pytorch_zip(const MappedFile& f, uint32_t file_index) {
  const std::string& where = f.path();
  auto bytes = f.bytes();
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "PK\x03\x04", 4) != 0)
    fail<UnsupportedError>(where,
                           "not a zip archive: only the zip format of torch.save (PyTorch >= 1.6) is "
                           "supported, not the legacy format");
  std::map<std::string, ZipEntry> entries = list_zip(f);

  // ARCHIVE/data.pkl, with ARCHIVE a single top-level folder.
  std::string prefix;
  for (const auto& [name, e] : entries) {
    auto slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
      if (!prefix.empty()) fail(where, "several data.pkl entries in the archive");
      prefix = name.substr(0, slash + 1);
    }
  }
  if (prefix.empty()) {
    if (entries.count("constants.pkl") || entries.count("code/"))
      fail<UnsupportedError>(where, "TorchScript archives are not supported");
    fail(where, "zip archive has no ARCHIVE/data.pkl entry: not a torch.save checkpoint");
  }
  if (auto bo = entries.find(prefix + "byteorder"); bo != entries.end()) {
    auto s = f.slice(bo->second.offset, bo->second.size);
    if (std::string_view(reinterpret_cast<const char*>(s.data()), s.size()) != "little")
      fail<UnsupportedError>(where, "big-endian checkpoints are not supported");
  }

  const ZipEntry& pkl = entries.at(prefix + "data.pkl");
  std::vector<PickledTensor> pickled =
      unpickle_state_dict(f.slice(pkl.offset, pkl.size), where + ":" + prefix + "data.pkl");

  std::vector<TensorInfo> out;
  out.reserve(pickled.size());
  for (auto& p : pickled) {
    auto it = entries.find(prefix + "data/" + p.storage_key);
    if (it == entries.end())
      fail(where, "tensor '{}': storage '{}' is missing from the archive", p.name, p.storage_key);
    const uint32_t elem = traits(p.dtype).block_bytes;
    const ZipEntry& e = it->second;
    if (static_cast<uint64_t>(p.storage_numel) > e.size / elem)
      fail(where, "tensor '{}': storage '{}' holds {} bytes, fewer than its {} {} elements", p.name,
           p.storage_key, e.size, p.storage_numel, dtype_name(p.dtype));
    if (p.shape.size() > 8) fail(where, "tensor '{}': rank {} exceeds 8", p.name, p.shape.size());
    if (p.stride.size() != p.shape.size())
      fail(where, "tensor '{}': stride has {} entries for rank {}", p.name, p.stride.size(), p.shape.size());
    uint64_t numel = 1;
    for (int64_t d : p.shape) {
      if (d < 0) fail(where, "tensor '{}': negative dimension {}", p.name, d);
      if (d != 0 && numel > e.size / static_cast<uint64_t>(d) + 1)  // cheap pre-check; exact below
        fail(where, "tensor '{}': shape exceeds its storage", p.name);
      numel *= static_cast<uint64_t>(d);
    }
    if (p.storage_offset < 0) fail(where, "tensor '{}': negative storage offset", p.name);
    if (numel > 0 && (static_cast<uint64_t>(p.storage_offset) > static_cast<uint64_t>(p.storage_numel) ||
                      numel > static_cast<uint64_t>(p.storage_numel - p.storage_offset)))
      fail(where, "tensor '{}': {} elements at offset {} exceed storage '{}' ({} elements)", p.name, numel,
           p.storage_offset, p.storage_key, p.storage_numel);
    if (!contiguous(p.shape, p.stride))
      fail<UnsupportedError>(where, "tensor '{}' is not contiguous (stride {}); save it with .contiguous()",
                             p.name, fmt::join(p.stride, ","));
    TensorInfo t;
    t.name = std::move(p.name);
    t.dtype = p.dtype;
    t.type_name = std::string(dtype_name(p.dtype));
    t.shape = std::move(p.shape);
    t.file_index = file_index;
    t.offset = e.offset + (numel ? static_cast<uint64_t>(p.storage_offset) * elem : 0);
    t.nbytes = numel * elem;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace kaival::weights
