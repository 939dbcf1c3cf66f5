// A one-line progress bar on a terminal: tokens done, percentage, tokens/s and ETA, redrawn at
// most ten times a second.
//
// Thread-safety: not thread-safe.
#ifndef PROTEUS_CLIENT_PROGRESS_BAR_H_
#define PROTEUS_CLIENT_PROGRESS_BAR_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace proteus::client {

// "name [#######>......]  45.0%  1.2M/2.7M tokens  54.3k tok/s  ETA 0:28" (pure, for tests).
std::string FormatProgress(const std::string& label, int64_t done, int64_t total, double seconds,
                           int bar_width = 24);
// 1234 -> "1.2k", 5600000 -> "5.6M".
std::string HumanCount(double n);

class ProgressBar {
 public:
  // Draws nothing when `enabled` is false.
  ProgressBar(std::string label, int64_t total, bool enabled, std::FILE* out = stderr);
  void Update(int64_t done);
  // The final state, then a newline.
  void Finish();

 private:
  using Clock = std::chrono::steady_clock;
  const std::string label_;
  const int64_t total_;
  const bool enabled_;
  std::FILE* const out_;
  const Clock::time_point start_;
  Clock::time_point last_draw_;
  int64_t done_ = 0;
  bool drawn_ = false;
};

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_PROGRESS_BAR_H_
