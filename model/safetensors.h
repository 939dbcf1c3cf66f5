// Reader and writer of the safetensors format, torch-free (DESIGN §2.7).
//
// Layout: 8-byte little-endian u64 N, N bytes of JSON header, data region.
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the data region) plus an optional
// "__metadata__" string -> string map. Tensor data is little-endian, C order.
//
// The reader treats every file as hostile: any inconsistency is an error
// status whose message starts with the file path (and the tensor name where
// one applies), never a crash, an out-of-bounds read or an allocation sized by
// the header. Like the reference implementation (huggingface/safetensors), it
// requires the tensors to tile the data region exactly: no overlaps, no gaps,
// no trailing bytes.
//
// Thread-safety: SafetensorsFile is immutable after Open/Parse and may be read
// from several threads. SafetensorsWriter is not thread-safe.

#ifndef PROTEUS_MODEL_SAFETENSORS_H_
#define PROTEUS_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace proteus {

// Element types. The on-disk names ("F32", ...) are the format; the enum
// values are not persisted.
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL".
std::string_view DTypeName(DType dtype);
// Bytes per element: 8, 4, 2, 2, 8, 4, 2, 1, 1, 1.
size_t DTypeSize(DType dtype);
// Inverse of DTypeName (exact, case-sensitive); INVALID_ARGUMENT otherwise.
absl::StatusOr<DType> ParseDType(std::string_view name);

// "[512, 256]"; "[]" for a scalar.
std::string ShapeToString(const std::vector<int64_t>& shape);

// One tensor of a SafetensorsFile. `data` points into the file's bytes, which
// the SafetensorsFile owns: a view must not outlive it. `data` is NOT aligned
// to the element size in general (files need not align tensors); copy with
// memcpy rather than casting. For a zero-element tensor nbytes is 0 and
// `data` must not be dereferenced.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // [] is a scalar (one element)
  const uint8_t* data;
  size_t nbytes;  // == product(shape) * DTypeSize(dtype)
};

// OK if `view` has exactly this dtype and shape; else INVALID_ARGUMENT whose
// message starts with the tensor's name:
// "layers.0.attn.wq: expected shape [512, 512], got [512, 256]".
absl::Status CheckTensor(const TensorView& view, DType dtype,
                         const std::vector<int64_t>& shape);

// Builds a safetensors file in memory. Tensors are laid out sorted by name
// (byte order), back to back, so the output is a function of the contents
// only, not of the order of Add calls.
class SafetensorsWriter {
 public:
  SafetensorsWriter();
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Copies `nbytes` bytes from `data` (little-endian, C order). Errors
  // (INVALID_ARGUMENT, starting with the name): empty name, "__metadata__",
  // name not valid UTF-8, duplicate name, negative dimension, element count
  // overflow, nbytes != product(shape) * DTypeSize(dtype), data == nullptr
  // with nbytes > 0.
  absl::Status Add(std::string_view name, DType dtype,
                   const std::vector<int64_t>& shape, const void* data,
                   size_t nbytes);

  // Adds a "__metadata__" entry. Duplicate keys and non-UTF-8 text are
  // INVALID_ARGUMENT.
  absl::Status AddMetadata(std::string_view key, std::string_view value);

  // The complete file. The header JSON is padded with spaces to a multiple of
  // 8 bytes, so the data region starts 8-byte aligned.
  std::string Serialize() const;

  // Writes Serialize() to `path + ".tmp"`, fsyncs it and renames it to
  // `path`, so a crash never leaves a partial file at `path`.
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

// A parsed, fully validated safetensors file. Owns all its bytes (the whole
// file is read into memory, see safetensors.cc for why not mmap); TensorView
// pointers stay valid until this object is destroyed, including across moves.
class SafetensorsFile {
 public:
  // Reads and validates the file. NOT_FOUND if it does not exist; other
  // errors are DATA_LOSS (truncated, sizes inconsistent) or INVALID_ARGUMENT
  // (malformed header), RESOURCE_EXHAUSTED if the file does not fit in
  // memory; all start with `path`.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Validates `bytes`, a whole file; `source` is the name used in messages.
  static absl::StatusOr<SafetensorsFile> Parse(
      std::string bytes, std::string source = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  // Tensor names, sorted. A moved-from object has none.
  std::vector<std::string> Names() const;
  // nullptr if there is no tensor `name`. Owned by this object.
  const TensorView* Find(std::string_view name) const;
  // The "__metadata__" map (empty if absent).
  const std::map<std::string, std::string>& Metadata() const;
  // The path or source name given to Open/Parse.
  const std::string& source() const;

 private:
  struct Rep;
  explicit SafetensorsFile(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace proteus

#endif  // PROTEUS_MODEL_SAFETENSORS_H_
