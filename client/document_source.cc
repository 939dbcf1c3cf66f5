#include "client/document_source.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace proteus::client {
namespace {

class ByteFile final : public DocumentSource {
 public:
  ByteFile(std::string path, std::ifstream in, int64_t size)
      : path_(std::move(path)), in_(std::move(in)), size_(size) {}
  int64_t size() const override { return size_; }
  const std::string& name() const override { return path_; }
  absl::Status Fill(int64_t start, int64_t n, v1::Chunk* chunk) override {
    std::string* data = chunk->mutable_data();
    data->resize(static_cast<size_t>(n));
    in_.clear();
    in_.seekg(start);
    in_.read(data->data(), n);
    if (in_.gcount() != n) {
      return absl::DataLossError(absl::StrCat(path_, ": could not read bytes [", start, ", ",
                                              start + n, "): did the file change?"));
    }
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  std::ifstream in_;
  const int64_t size_;
};

class Ids final : public DocumentSource {
 public:
  Ids(std::string name, std::vector<int32_t> ids) : name_(std::move(name)), ids_(std::move(ids)) {}
  int64_t size() const override { return static_cast<int64_t>(ids_.size()); }
  const std::string& name() const override { return name_; }
  absl::Status Fill(int64_t start, int64_t n, v1::Chunk* chunk) override {
    chunk->mutable_token_ids()->mutable_ids()->Assign(ids_.begin() + start,
                                                      ids_.begin() + start + n);
    return absl::OkStatus();
  }

 private:
  const std::string name_;
  const std::vector<int32_t> ids_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DocumentSource>> OpenByteFile(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) return absl::NotFoundError(absl::StrCat(path, ": ", error.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  return std::unique_ptr<DocumentSource>(
      new ByteFile(path, std::move(in), static_cast<int64_t>(size)));
}

std::unique_ptr<DocumentSource> TokenIdSource(std::string name, std::vector<int32_t> ids) {
  return std::make_unique<Ids>(std::move(name), std::move(ids));
}

}  // namespace proteus::client
