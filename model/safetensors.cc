#include "model/safetensors.h"


#include <algorithm>
#include <cstdio>
#include <limits>
#include <new>
#include <stdexcept>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "model/file_util.h"
#include "model/strict_json.h"

// Open() reads the whole file instead of mapping it: a mapped file that is
// truncated or rewritten in place turns reads into SIGBUS, a crash no status
// can report; the weights are copied to the device right after loading, so
// the host copy is short-lived; and Open and Parse share one code path.

namespace proteus {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Same cap as the reference implementation; real headers are kilobytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The schema needs 3 levels (root, entry, shape); deeper is garbage.
constexpr size_t kMaxJsonDepth = 8;
constexpr char kMetadataKey[] = "__metadata__";

constexpr DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16,
                                DType::kBF16, DType::kI64, DType::kI32,
                                DType::kI16, DType::kI8, DType::kU8,
                                DType::kBool};

absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

// Containers by type only: a hostile value can neither flood the message nor
// recurse deeply.
std::string Shorten(std::string s) {
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}
std::string Describe(const Json& v) { return DescribeJson(v); }

bool IsValidUtf8(std::string_view s) {
  try {
    (void)Json(std::string(s)).dump();
    return true;
  } catch (const Json::exception&) {
    return false;
  }
}

// Product of dims times elem_size, or false on a negative dim or overflow.
bool ByteCount(const std::vector<int64_t>& shape, size_t elem_size,
               uint64_t* out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      return false;
    }
  }
  *out = n;
  return true;
}

// Strict parsing of the header; errors start with `what` (the file).
absl::StatusOr<Json> ParseHeaderJson(std::string_view text, absl::string_view what) {
  absl::StatusOr<StrictJson> parsed = ParseStrictJson(text, std::string(what), kMaxJsonDepth);
  if (!parsed.ok()) return parsed.status();
  if (parsed->too_deep) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  if (!parsed->duplicate_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": key \"", parsed->duplicate_key, "\" appears more than once"));
  }
  return std::move(parsed->value);
}

struct ParsedEntry {
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// Validates one header entry against the schema and its own byte count; the
// layout checks that relate entries to each other and to the file come later.
// Messages start with what follows "<path>: <name>: ".
absl::StatusOr<ParsedEntry> ParseEntry(const Json& v) {
  if (!v.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry must be an object, got ", Describe(v)));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing key \"", key, "\""));
    }
  }
  if (v.size() != 3) {
    for (const auto& item : v.items()) {
      const std::string& k = item.key();
      if (k != "dtype" && k != "shape" && k != "data_offsets") {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected key ", Describe(Json(k))));
      }
    }
  }
  ParsedEntry e;
  const Json& dtype = v["dtype"];
  if (!dtype.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype must be a string, got ", Describe(dtype)));
  }
  absl::StatusOr<DType> d = ParseDType(dtype.get<std::string>());
  if (!d.ok()) return d.status();
  e.dtype = *d;

  const Json& shape = v["shape"];
  if (!shape.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape must be an array, got ", Describe(shape)));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    const Json& dim = shape[i];
    if (!dim.is_number_unsigned() ||
        dim.get<uint64_t>() >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape[", i, "] must be a non-negative integer, got ",
                       Describe(dim)));
    }
    e.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }
  uint64_t nbytes = 0;
  if (!ByteCount(e.shape, DTypeSize(e.dtype), &nbytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size of shape ", ShapeToString(e.shape), " x ",
                     AV(DTypeName(e.dtype)), " overflows 64 bits"));
  }

  const Json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 ||
      !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    // Depth is bounded by ParseStrictJson, so a short array dumps safely.
    const bool pair_like = offsets.is_array() && offsets.size() <= 2;
    return absl::InvalidArgumentError(absl::StrCat(
        "data_offsets must be [begin, end] with non-negative integers, got ",
        pair_like ? Shorten(offsets.dump()) : Describe(offsets)));
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.begin > e.end) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data_offsets begin ", e.begin, " is after end ", e.end));
  }
  if (e.end - e.begin != nbytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_offsets [", e.begin, ", ", e.end, ") span ",
                     e.end - e.begin, " bytes but ", AV(DTypeName(e.dtype)), " ",
                     ShapeToString(e.shape), " needs ", nbytes));
  }
  return e;
}

absl::Status Prefixed(const absl::Status& s, absl::string_view prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, ": ", s.message()));
}

}  // namespace

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF64: return "F64";
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "INVALID";
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF64: case DType::kI64: return 8;
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
  }
  return 1;
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (DType d : kAllDTypes) {
    if (DTypeName(d) == name) return d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype ", Describe(Json(std::string(name)))));
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status CheckTensor(const TensorView& view, DType dtype,
                         const std::vector<int64_t>& shape) {
  std::vector<std::string> problems;
  if (view.dtype != dtype) {
    problems.push_back(absl::StrCat("expected dtype ", AV(DTypeName(dtype)),
                                    ", got ", AV(DTypeName(view.dtype))));
  }
  if (view.shape != shape) {
    problems.push_back(absl::StrCat("expected shape ", ShapeToString(shape),
                                    ", got ", ShapeToString(view.shape)));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(view.name, ": ", absl::StrJoin(problems, "; ")));
}

// ---------------------------------------------------------------- Writer

struct SafetensorsWriter::Rep {
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::map<std::string, Entry> tensors;  // sorted by name: the layout order
  std::map<std::string, std::string> metadata;
};

SafetensorsWriter::SafetensorsWriter() : rep_(std::make_unique<Rep>()) {}
SafetensorsWriter::~SafetensorsWriter() = default;

absl::Status SafetensorsWriter::Add(std::string_view name, DType dtype,
                                    const std::vector<int64_t>& shape,
                                    const void* data, size_t nbytes) {
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(AV(name), ": ", what));
  };
  if (name.empty()) return fail("tensor name must not be empty");
  if (name == kMetadataKey) return fail("reserved name");
  if (!IsValidUtf8(name)) return fail("tensor name must be valid UTF-8");
  if (rep_->tensors.count(std::string(name))) return fail("duplicate tensor");
  uint64_t expected = 0;
  if (!ByteCount(shape, DTypeSize(dtype), &expected)) {
    return fail(absl::StrCat("invalid shape ", ShapeToString(shape),
                             " (negative or overflowing)"));
  }
  if (expected != nbytes) {
    return fail(absl::StrCat(AV(DTypeName(dtype)), " ", ShapeToString(shape),
                             " needs ", expected, " bytes, got ", nbytes));
  }
  if (data == nullptr && nbytes > 0) return fail("data is null");
  Rep::Entry e{dtype, shape, std::string()};
  if (nbytes > 0) e.bytes.assign(static_cast<const char*>(data), nbytes);
  rep_->tensors.emplace(std::string(name), std::move(e));
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddMetadata(std::string_view key,
                                            std::string_view value) {
  if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kMetadataKey, ": key and value must be valid UTF-8"));
  }
  if (!rep_->metadata.emplace(std::string(key), std::string(value)).second) {
    return absl::InvalidArgumentError(
        absl::StrCat(kMetadataKey, ": duplicate key \"", AV(key), "\""));
  }
  return absl::OkStatus();
}

std::string SafetensorsWriter::Serialize() const {
  OrderedJson header = OrderedJson::object();
  if (!rep_->metadata.empty()) header[kMetadataKey] = rep_->metadata;
  uint64_t offset = 0;
  for (const auto& [name, e] : rep_->tensors) {
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = std::string(DTypeName(e.dtype));
    entry["shape"] = e.shape;
    entry["data_offsets"] = {offset, offset + e.bytes.size()};
    header[name] = std::move(entry);
    offset += e.bytes.size();
  }
  std::string text = header.dump();  // names were checked to be UTF-8
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xff));
  }
  out += text;
  for (const auto& [name, e] : rep_->tensors) out += e.bytes;
  return out;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  return WriteFileAtomically(path, Serialize());
}

// ---------------------------------------------------------------- Reader

struct SafetensorsFile::Rep {
  std::string source;
  std::string bytes;  // the whole file; TensorView::data points into it
  std::map<std::string, TensorView, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile::SafetensorsFile(std::unique_ptr<Rep> rep)
    : rep_(std::move(rep)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept =
    default;
SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  absl::StatusOr<OpenedFile> opened = OpenRegularFile(path);
  if (!opened.ok()) return opened.status();
  std::FILE* f = opened->file;
  // Sized by the file system, never by the header.
  std::string bytes;
  try {
    bytes.resize(static_cast<size_t>(opened->size));
  } catch (const std::exception&) {  // bad_alloc, length_error
    std::fclose(f);
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": cannot allocate ", opened->size, " bytes to read the file"));
  }
  const size_t n = std::fread(bytes.data(), 1, bytes.size(), f);
  const bool error = std::ferror(f) != 0;
  const bool grew = n == bytes.size() && std::fgetc(f) != EOF;
  std::fclose(f);
  if (error) return absl::DataLossError(absl::StrCat(path, ": read error"));
  if (n != bytes.size() || grew) {
    return absl::DataLossError(
        absl::StrCat(path, ": file changed size while being read"));
  }
  return Parse(std::move(bytes), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(std::string bytes,
                                                       std::string source) {
  auto rep = std::make_unique<Rep>();
  rep->source = std::move(source);
  rep->bytes = std::move(bytes);
  const std::string& src = rep->source;
  const std::string& b = rep->bytes;
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": ", what));
  };
  auto data_loss = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(src, ": ", what));
  };

  if (b.size() < 8) {
    return data_loss(absl::StrCat("file is ", b.size(),
                                  " bytes, too short for the 8-byte header "
                                  "length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(b[i]);
  if (n > kMaxHeaderBytes) {
    return invalid(absl::StrCat("header length ", n, " exceeds the limit of ",
                                kMaxHeaderBytes, " bytes"));
  }
  if (n > b.size() - 8) {
    return data_loss(absl::StrCat("header length ", n, " exceeds the ",
                                  b.size() - 8,
                                  " bytes after the length field (truncated "
                                  "file?)"));
  }
  const std::string_view header(b.data() + 8, n);
  if (header.empty() || header[0] != '{') {
    return invalid("header must be a JSON object starting with '{'");
  }
  absl::StatusOr<Json> parsed =
      ParseHeaderJson(header, absl::StrCat(src, ": header"));
  if (!parsed.ok()) return parsed.status();  // valid and '{': an object

  const uint64_t data_size = b.size() - 8 - n;
  const uint8_t* data = reinterpret_cast<const uint8_t*>(b.data()) + 8 + n;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> layout;
  for (const auto& item : parsed->items()) {
    const std::string& name = item.key();
    const Json& value = item.value();
    if (name == kMetadataKey) {
      if (!value.is_object()) {
        return invalid(absl::StrCat(name, ": must be an object, got ",
                                    Describe(value)));
      }
      for (const auto& kv : value.items()) {
        if (!kv.value().is_string()) {
          return invalid(absl::StrCat(name, ": value of ",
                                      Describe(Json(kv.key())),
                                      " must be a string, got ",
                                      Describe(kv.value())));
        }
        rep->metadata.emplace(kv.key(), kv.value().get<std::string>());
      }
      continue;
    }
    absl::StatusOr<ParsedEntry> e = ParseEntry(value);
    if (!e.ok()) return Prefixed(e.status(), absl::StrCat(src, ": ", name));
    if (e->end > data_size) {
      return data_loss(absl::StrCat(name, ": data_offsets end ", e->end,
                                    " is beyond the data region (", data_size,
                                    " bytes; truncated file?)"));
    }
    layout.emplace_back(e->begin, e->end, name);
    rep->tensors.emplace(
        name, TensorView{name, e->dtype, std::move(e->shape), data + e->begin,
                         static_cast<size_t>(e->end - e->begin)});
  }

  // The tensors must tile [0, data_size) exactly, as in the reference
  // implementation: overlaps would alias, gaps and trailing bytes could hide
  // a second payload (a polyglot file).
  std::sort(layout.begin(), layout.end());
  uint64_t cursor = 0;
  std::string previous;
  for (const auto& [begin, end, name] : layout) {
    if (begin < cursor) {
      return invalid(absl::StrCat(name, ": data_offsets [", begin, ", ", end,
                                  ") overlap tensor \"", previous,
                                  "\", which ends at ", cursor));
    }
    if (begin > cursor) {
      return invalid(absl::StrCat(name, ": data_offsets begin ", begin,
                                  " leaves a gap after byte ", cursor,
                                  "; tensors must be contiguous"));
    }
    cursor = end;
    previous = name;
  }
  if (cursor != data_size) {
    return data_loss(absl::StrCat("data region has ", data_size,
                                  " bytes but the tensors cover ", cursor));
  }
  return SafetensorsFile(std::move(rep));
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  if (rep_ == nullptr) return names;
  for (const auto& [name, view] : rep_->tensors) names.push_back(name);
  return names;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  if (rep_ == nullptr) return nullptr;
  auto it = rep_->tensors.find(name);
  return it == rep_->tensors.end() ? nullptr : &it->second;
}

const std::map<std::string, std::string>& SafetensorsFile::Metadata() const {
  static const auto* const kEmpty = new std::map<std::string, std::string>();
  return rep_ == nullptr ? *kEmpty : rep_->metadata;
}

const std::string& SafetensorsFile::source() const {
  static const auto* const kEmpty = new std::string();
  return rep_ == nullptr ? *kEmpty : rep_->source;
}

}  // namespace proteus
