// Bearer-token authentication (DESIGN.md §3 "Security"). Tokens come from a file; a call
// carries `authorization: Bearer <token>` metadata. Each token is a principal: sessions remember
// the principal that created them and resume only for it.
//
// Thread-safety: immutable after construction; Authenticate may be called from any thread.
#ifndef PROTEUS_SERVER_AUTH_H_
#define PROTEUS_SERVER_AUTH_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace proteus::server {

// Who made a call: 0 when authentication is off, else 1 + the token's line index in the file.
using Principal = int;

class TokenAuthenticator {
 public:
  // Authentication off: every call is principal 0.
  TokenAuthenticator() = default;
  // REQUIRES: tokens non-empty, each non-empty.
  explicit TokenAuthenticator(std::vector<std::string> tokens);

  // Reads a token file: one token per line, surrounding whitespace trimmed, blank lines and
  // lines starting with '#' skipped. Errors name the path: missing file, no token, a token with
  // inner whitespace.
  static absl::StatusOr<TokenAuthenticator> FromFile(const std::string& path);

  bool enabled() const { return !tokens_.empty(); }

  // `metadata` is the call's client metadata (keys lowercase). UNAUTHENTICATED, with a message
  // saying what to send, when the header is missing, malformed or carries an unknown token.
  // Tokens are compared in constant time.
  template <typename Multimap>
  absl::StatusOr<Principal> Authenticate(const Multimap& metadata) const {
    if (!enabled()) return 0;
    auto it = metadata.find("authorization");
    if (it == metadata.end()) return Check(nullptr);
    const absl::string_view value(it->second.data(), it->second.size());
    return Check(&value);
  }

 private:
  absl::StatusOr<Principal> Check(const absl::string_view* header) const;
  std::vector<std::string> tokens_;
};

}  // namespace proteus::server

#endif  // PROTEUS_SERVER_AUTH_H_
