#include "client/routing_watch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace proteus::client {

std::string Sparkline(const std::vector<double>& values) {
  static const char* const kBars[8] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  const double top = values.empty() ? 0.0 : *std::max_element(values.begin(), values.end());
  std::string line;
  for (double v : values) {
    const int level = top > 0.0 ? std::clamp(static_cast<int>(v / top * 7.0 + 0.5), 0, 7) : 0;
    line += kBars[level];
  }
  return line;
}

std::string FormatRoutingEvent(const v1::RoutingEvent& event, uint64_t previous_sequence) {
  std::string text;
  if (previous_sequence != 0 && event.sequence() > previous_sequence + 1) {
    absl::StrAppend(&text, "… ", event.sequence() - previous_sequence - 1,
                    " events dropped by the server (this watcher fell behind)\n");
  }
  const absl::Time when = absl::FromUnixNanos(event.unix_time_ns());
  absl::StrAppend(&text,
                  absl::StrFormat("#%d %s doc %s  tokens [%d, %d)  %d tokens\n", event.sequence(),
                                  absl::FormatTime("%H:%M:%E3S", when, absl::LocalTimeZone()),
                                  event.document(), event.start(), event.end(),
                                  event.end() - event.start()));
  for (const v1::LayerRouting& l : event.layers()) {
    absl::StrAppend(&text, absl::StrFormat("  L%-2d α %.3f–%.3f  dense %d sparse %d linear %d",
                                           l.layer(), l.alpha_min(), l.alpha_max(),
                                           l.dense_tokens(), l.sparse_tokens(), l.linear_tokens()));
    if (l.gate_usage_size() > 0) {
      const std::vector<double> usage(l.gate_usage().begin(), l.gate_usage().end());
      absl::StrAppend(&text,
                      absl::StrFormat("  gates %s  entropy %.3f  ppl %.2f/%d  unused %d  lb %.3f",
                                      Sparkline(usage), l.gate_entropy_ratio(),
                                      l.gate_usage_perplexity(), l.gate_usage_size(),
                                      l.gates_unused(), l.load_balance_ratio()));
    }
    if (l.dna_drift_max() > 0.0 || l.dna_drift_mean() > 0.0) {
      absl::StrAppend(&text, absl::StrFormat("  drift %.4f/%.4f", l.dna_drift_mean(),
                                             l.dna_drift_max()));
    }
    if (l.evicted_blocks() > 0) absl::StrAppend(&text, "  evicted ", l.evicted_blocks());
    text += "\n";
  }
  return text;
}

absl::Status WatchRouting(const Connection& connection, const WatchOptions& options,
                          std::ostream& out) {
  grpc::ClientContext context;
  connection.Prepare(&context);
  v1::WatchRoutingRequest request;
  for (int layer : options.layers) request.add_layers(layer);
  std::unique_ptr<grpc::ClientReader<v1::RoutingEvent>> reader =
      connection.telemetry().WatchRouting(&context, request);
  v1::RoutingEvent event;
  uint64_t previous = 0;
  int64_t seen = 0;
  while (reader->Read(&event)) {
    out << FormatRoutingEvent(event, previous) << std::flush;
    previous = event.sequence();
    if (options.max_events > 0 && ++seen >= options.max_events) {
      context.TryCancel();
      reader->Finish();
      return absl::OkStatus();
    }
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat(connection.target(), ": ", s.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace proteus::client
