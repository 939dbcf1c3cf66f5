// One split of the byte-level corpus (train/make_corpus.py writes S.bin): the
// bytes in memory, crops of it as token ids. Torch-free.
#ifndef PROTEUS_TRAIN_CORPUS_H_
#define PROTEUS_TRAIN_CORPUS_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace proteus {
namespace train {

class Corpus {
 public:
  // Reads the whole file. Errors name the path.
  static absl::StatusOr<Corpus> Open(const std::string& path);

  int64_t size() const { return static_cast<int64_t>(bytes_.size()); }
  const std::string& path() const { return path_; }

  // A uniform crop start in [0, size − length]. REQUIRES: length ≤ size().
  int64_t RandomOffset(int64_t length, std::mt19937_64& rng) const;
  // Crop `index` of `count` evenly spaced crops of `length` (the fixed validation set).
  int64_t EvenlySpacedOffset(int64_t index, int64_t count, int64_t length) const;
  // Appends bytes [offset, offset + length) as token ids.
  void AppendTokens(int64_t offset, int64_t length, std::vector<int64_t>* out) const;

 private:
  std::string path_;
  std::string bytes_;
};

}  // namespace train
}  // namespace proteus

#endif  // PROTEUS_TRAIN_CORPUS_H_
