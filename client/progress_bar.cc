#include "client/progress_bar.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace proteus::client {

std::string HumanCount(double n) {
  if (n >= 1e9) return absl::StrFormat("%.1fG", n / 1e9);
  if (n >= 1e6) return absl::StrFormat("%.1fM", n / 1e6);
  if (n >= 1e4) return absl::StrFormat("%.1fk", n / 1e3);
  return absl::StrFormat("%.0f", n);
}

std::string FormatProgress(const std::string& label, int64_t done, int64_t total, double seconds,
                           int bar_width) {
  const double fraction = total > 0 ? std::clamp(double(done) / total, 0.0, 1.0) : 1.0;
  const int filled = static_cast<int>(fraction * bar_width);
  std::string bar(filled, '#');
  if (filled < bar_width) bar += '>' + std::string(bar_width - filled - 1, '.');
  const double rate = seconds > 0 ? done / seconds : 0;
  std::string eta = "--:--";
  if (rate > 0 && done < total) {
    const int64_t left = static_cast<int64_t>((total - done) / rate + 0.5);
    eta = absl::StrFormat("%d:%02d", left / 60, left % 60);
  } else if (done >= total) {
    eta = "0:00";
  }
  return absl::StrFormat("%s [%s] %5.1f%%  %s/%s tokens  %s tok/s  ETA %s", label, bar,
                         100 * fraction, HumanCount(done), HumanCount(total), HumanCount(rate),
                         eta);
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, std::FILE* out)
    : label_(std::move(label)), total_(total), enabled_(enabled), out_(out),
      start_(Clock::now()), last_draw_(start_) {}

void ProgressBar::Update(int64_t done) {
  done_ = done;
  const Clock::time_point now = Clock::now();
  if (!enabled_ || (drawn_ && now - last_draw_ < std::chrono::milliseconds(100))) return;
  last_draw_ = now;
  drawn_ = true;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  // \r and erase-to-end-of-line: redraw in place.
  std::fprintf(out_, "\r%s\x1b[K", FormatProgress(label_, done_, total_, seconds).c_str());
  std::fflush(out_);
}

void ProgressBar::Finish() {
  if (!enabled_) return;
  drawn_ = false;  // force the last draw
  Update(done_);
  std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace proteus::client
