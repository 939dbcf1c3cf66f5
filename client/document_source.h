// DocumentSource: where a document's tokens come from, read piece by piece so a file of any
// size streams without being held in memory. Positions are token positions; for a byte file
// they are byte offsets (one token per byte), which is what makes a resume able to seek.
//
// Thread-safety: not thread-safe; one reader at a time.
#ifndef PROTEUS_CLIENT_DOCUMENT_SOURCE_H_
#define PROTEUS_CLIENT_DOCUMENT_SOURCE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proteus/v1/encoder.pb.h"

namespace proteus::client {

class DocumentSource {
 public:
  virtual ~DocumentSource() = default;
  // Tokens in the document.
  virtual int64_t size() const = 0;
  // Fills `chunk`'s input with tokens [start, start + n). REQUIRES start + n <= size().
  virtual absl::Status Fill(int64_t start, int64_t n, v1::Chunk* chunk) = 0;
  // For messages: the file name, or "<ids>".
  virtual const std::string& name() const = 0;
};

// A file of raw bytes (UTF-8 text or binary), read with seeks.
absl::StatusOr<std::unique_ptr<DocumentSource>> OpenByteFile(const std::string& path);

// Token ids held in memory (e.g. parsed from a JSON array with --ids).
std::unique_ptr<DocumentSource> TokenIdSource(std::string name, std::vector<int32_t> ids);

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_DOCUMENT_SOURCE_H_
