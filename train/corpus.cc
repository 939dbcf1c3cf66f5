#include "train/corpus.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "model/file_util.h"

namespace proteus {
namespace train {

absl::StatusOr<Corpus> Corpus::Open(const std::string& path) {
  absl::StatusOr<OpenedFile> f = OpenRegularFile(path);
  if (!f.ok()) return f.status();
  Corpus c;
  c.path_ = path;
  c.bytes_.resize(static_cast<size_t>(f->size));
  const size_t got = std::fread(c.bytes_.data(), 1, c.bytes_.size(), f->file);
  std::fclose(f->file);
  if (got != c.bytes_.size()) {
    return absl::DataLossError(absl::StrCat(path, ": read ", got, " of ", f->size, " bytes"));
  }
  if (c.bytes_.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  return c;
}

int64_t Corpus::RandomOffset(int64_t length, std::mt19937_64& rng) const {
  // Modulo of a 64-bit draw: the bias is below 2^-20 for any corpus under a terabyte, and
  // unlike std::uniform_int_distribution it is the same on every standard library.
  return static_cast<int64_t>(rng() % static_cast<uint64_t>(size() - length + 1));
}

int64_t Corpus::EvenlySpacedOffset(int64_t index, int64_t count, int64_t length) const {
  const int64_t span = size() - length;
  return count <= 1 ? 0 : static_cast<int64_t>(static_cast<__int128>(span) * index / (count - 1));
}

void Corpus::AppendTokens(int64_t offset, int64_t length, std::vector<int64_t>* out) const {
  for (int64_t i = offset; i < offset + length; ++i) {
    out->push_back(static_cast<unsigned char>(bytes_[static_cast<size_t>(i)]));
  }
}

}  // namespace train
}  // namespace proteus
