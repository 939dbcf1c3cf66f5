// Fuzzes SafetensorsFile::Parse (model/safetensors.h), the reader of checkpoint files: the same
// code path as SafetensorsFile::Open, which reads the whole file and hands it to Parse.
//
// Input: bit 0 of the first byte picks the framing.
//   0: the rest is the file, as is (the 8-byte length prefix included);
//   1: the rest is [u16 little-endian D][header JSON][D bytes of data]; the harness writes
//      the length prefix, so mutations of the header keep the file well framed and reach
//      the JSON schema and layout checks instead of stopping at the length.
// Bit 7 also writes the file to a temporary file and checks that Open agrees with Parse (a
// file system round trip per input is slow, hence not for every input).
// Checks beyond "no crash, no leak, no UB": errors carry the documented codes and start with
// the source name; an accepted file's views tile its data region exactly and can be read in
// full; an accepted file survives SafetensorsWriter -> Parse unchanged, and a move.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "model/safetensors.h"
#include "tests/fuzz/fuzz_check.h"

namespace proteus {
namespace {

constexpr char kSource[] = "fuzz.safetensors";

std::string Frame(const uint8_t* data, size_t size) {
  size_t data_len = 0;
  if (size >= 2) {
    data_len = std::min<size_t>(data[0] | (size_t{data[1]} << 8), size - 2);
    data += 2;
    size -= 2;
  } else {
    size = 0;
  }
  const size_t header_len = size - data_len;
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((uint64_t{header_len} >> (8 * i)) & 0xff);
  file.append(reinterpret_cast<const char*>(data), size);
  return file;
}

struct Snapshot {
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
  bool operator==(const Snapshot& o) const {
    return dtype == o.dtype && shape == o.shape && bytes == o.bytes;
  }
};

// Reads every view in full (ASan sees any out-of-bounds pointer) and checks the layout.
std::map<std::string, Snapshot> CheckAccepted(const SafetensorsFile& file, size_t file_size) {
  FUZZ_CHECK(file.source() == kSource, "source() is \"%s\"", file.source().c_str());
  std::map<std::string, Snapshot> out;
  std::vector<const TensorView*> views;
  uint64_t total = 0;
  const std::vector<std::string> names = file.Names();
  FUZZ_CHECK(std::is_sorted(names.begin(), names.end()), "Names() not sorted");
  for (const std::string& name : names) {
    const TensorView* v = file.Find(name);
    FUZZ_CHECK(v != nullptr, "Find(listed name) is null");
    FUZZ_CHECK(v->name == name, "view name differs");
    FUZZ_CHECK(name != "__metadata__", "__metadata__ listed as a tensor");
    uint64_t n = DTypeSize(v->dtype);
    for (int64_t d : v->shape) {
      FUZZ_CHECK(d >= 0, "negative dimension");
      FUZZ_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n), "size overflow");
    }
    FUZZ_CHECK(n == v->nbytes, "nbytes %zu != product(shape) * elem size %llu", v->nbytes,
               static_cast<unsigned long long>(n));
    FUZZ_CHECK(v->nbytes <= file_size, "view larger than the file");
    FUZZ_CHECK(CheckTensor(*v, v->dtype, v->shape).ok(), "CheckTensor rejects its own view");
    Snapshot s{v->dtype, v->shape, std::string()};
    if (v->nbytes > 0) s.bytes.assign(reinterpret_cast<const char*>(v->data), v->nbytes);
    out.emplace(name, std::move(s));
    views.push_back(v);
    total += v->nbytes;
  }
  // Tiling: sorted by address, each non-empty view starts where the previous one ended.
  std::vector<const TensorView*> sized;
  for (const TensorView* v : views) {
    if (v->nbytes > 0) sized.push_back(v);
  }
  std::sort(sized.begin(), sized.end(),
            [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < sized.size(); ++i) {
    FUZZ_CHECK(sized[i - 1]->data + sized[i - 1]->nbytes == sized[i]->data,
               "views overlap or leave a gap");
  }
  FUZZ_CHECK(total + 8 <= file_size, "views cover more than the file");
  FUZZ_CHECK(file.Find(std::string("\xff not a name", 12)) == nullptr, "Find of a bad name");
  return out;
}

// SafetensorsFile::Open on the same bytes gives the same verdict and tensors as Parse.
void CheckOpenAgrees(const std::string& bytes) {
  static const std::string* const path = [] {
    const char* dir = std::getenv("TMPDIR");
    return new std::string(std::string(dir != nullptr ? dir : "/tmp") + "/safetensors_fuzzer." +
                           std::to_string(getpid()));
  }();
  {
    std::ofstream out(*path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    FUZZ_CHECK(static_cast<bool>(out), "cannot write %s", path->c_str());
  }
  absl::StatusOr<SafetensorsFile> opened = SafetensorsFile::Open(*path);
  absl::StatusOr<SafetensorsFile> parsed = SafetensorsFile::Parse(bytes, *path);
  std::remove(path->c_str());
  FUZZ_CHECK(opened.ok() == parsed.ok(), "Open: %s; Parse: %s",
             opened.status().ToString().c_str(), parsed.status().ToString().c_str());
  if (!opened.ok()) {
    FUZZ_CHECK(opened.status() == parsed.status(), "Open: %s; Parse: %s",
               opened.status().ToString().c_str(), parsed.status().ToString().c_str());
    return;
  }
  FUZZ_CHECK(opened->Names() == parsed->Names(), "Open and Parse list different tensors");
  FUZZ_CHECK(opened->Metadata() == parsed->Metadata(), "Open and Parse differ in metadata");
}

}  // namespace
}  // namespace proteus

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace proteus;
  if (size == 0) return 0;
  std::string bytes = (data[0] & 1) ? Frame(data + 1, size - 1)
                                    : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t file_size = bytes.size();
  if (data[0] & 0x80) CheckOpenAgrees(bytes);

  absl::StatusOr<SafetensorsFile> parsed = SafetensorsFile::Parse(std::move(bytes), kSource);
  if (!parsed.ok()) {
    const absl::StatusCode code = parsed.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
                   code == absl::StatusCode::kDataLoss ||
                   code == absl::StatusCode::kResourceExhausted,
               "unexpected code: %s", parsed.status().ToString().c_str());
    FUZZ_CHECK(absl::StartsWith(parsed.status().message(), std::string(kSource) + ": "),
               "message does not start with the source: %s", parsed.status().ToString().c_str());
    return 0;
  }
  const std::map<std::string, Snapshot> tensors = CheckAccepted(*parsed, file_size);
  const std::map<std::string, std::string> metadata = parsed->Metadata();

  // Round trip through the writer. The writer refuses an empty tensor name, which the reader
  // accepts (as the reference implementation does); such files are not rewritten.
  SafetensorsWriter writer;
  for (const auto& [name, s] : tensors) {
    absl::Status st = writer.Add(name, s.dtype, s.shape, s.bytes.data(), s.bytes.size());
    if (name.empty()) return 0;
    FUZZ_CHECK(st.ok(), "writer refuses an accepted tensor: %s", st.ToString().c_str());
  }
  for (const auto& [key, value] : metadata) {
    absl::Status st = writer.AddMetadata(key, value);
    FUZZ_CHECK(st.ok(), "writer refuses accepted metadata: %s", st.ToString().c_str());
  }
  const std::string rewritten = writer.Serialize();
  absl::StatusOr<SafetensorsFile> again = SafetensorsFile::Parse(rewritten, kSource);
  FUZZ_CHECK(again.ok(), "the writer's output does not parse: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(CheckAccepted(*again, rewritten.size()) == tensors, "tensors changed in the round trip");
  FUZZ_CHECK(again->Metadata() == metadata, "metadata changed in the round trip");

  // Moves keep the views valid; a moved-from file is empty.
  SafetensorsFile moved = std::move(*again);
  FUZZ_CHECK(again->Names().empty() && again->Find("x") == nullptr, "moved-from file not empty");
  FUZZ_CHECK(CheckAccepted(moved, rewritten.size()) == tensors, "tensors changed by a move");
  return 0;
}
