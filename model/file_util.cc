#include "model/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace proteus {

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat(tmp, ": cannot create"));
  }
  int err = 0;
  if (std::fwrite(contents.data(), 1, contents.size(), f) != contents.size() ||
      std::fflush(f) != 0 || ::fsync(fileno(f)) != 0) {  // the rename must not outrun the data
    err = errno;
  }
  if (std::fclose(f) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    std::remove(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat(path, ": write failed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<OpenedFile> OpenRegularFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  struct stat st;
  if (::fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  return OpenedFile{f, static_cast<int64_t>(st.st_size)};
}

}  // namespace proteus
