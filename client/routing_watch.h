// `proteus watch`: the routing log bus (Telemetry.WatchRouting) rendered live in the terminal,
// one block per chunk: the document's pseudonym, the token range, and per layer the α range,
// tokens per regime, a sparkline of gate usage, entropy, perplexity, unused gates, balance,
// DNA drift and evictions. Gaps in the event sequence (events the server dropped because this
// watcher fell behind) are reported.
#ifndef PROTEUS_CLIENT_ROUTING_WATCH_H_
#define PROTEUS_CLIENT_ROUTING_WATCH_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/connection.h"
#include "proteus/v1/telemetry.pb.h"

namespace proteus::client {

// The text of one event (several lines, each ending in '\n'). `previous_sequence` is the last
// sequence number seen (0: none), to report a gap.
std::string FormatRoutingEvent(const v1::RoutingEvent& event, uint64_t previous_sequence);

// Gate usage as a row of block characters, the tallest for the most used gate.
std::string Sparkline(const std::vector<double>& values);

struct WatchOptions {
  std::vector<int> layers;  // empty: all
  int64_t max_events = 0;   // stop after this many; 0: until the server ends the stream
};

// Streams events to `out` until max_events, the server ends the stream, or an error.
absl::Status WatchRouting(const Connection& connection, const WatchOptions& options,
                          std::ostream& out);

}  // namespace proteus::client

#endif  // PROTEUS_CLIENT_ROUTING_WATCH_H_
