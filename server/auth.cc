#include "server/auth.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace proteus::server {
namespace {

// Compares every byte whatever the first difference, so timing does not reveal a prefix.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

TokenAuthenticator::TokenAuthenticator(std::vector<std::string> tokens)
    : tokens_(std::move(tokens)) {}

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--token_file ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    for (char c : line) {
      if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--token_file ", path, ": line ", line_number,
            ": a token must be printable ASCII without spaces"));
      }
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token_file ", path, ": no token in the file"));
  }
  return TokenAuthenticator(std::move(tokens));
}

absl::StatusOr<Principal> TokenAuthenticator::Check(const absl::string_view* header) const {
  if (header == nullptr) {
    return absl::UnauthenticatedError(
        "missing bearer token: this server requires the metadata 'authorization: Bearer "
        "<token>'");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*header);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() || !absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  const absl::string_view token = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  Principal found = 0;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    // No early exit: every token is compared.
    if (ConstantTimeEquals(token, tokens_[i]) && found == 0) found = static_cast<int>(i) + 1;
  }
  if (found == 0) return absl::UnauthenticatedError("invalid bearer token");
  return found;
}

}  // namespace proteus::server
