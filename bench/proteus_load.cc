// proteus_load: N concurrent streaming sessions against a running proteus_server (issue 9), for
// a bounded time. Each session streams a pseudo-random document chunk by chunk (one chunk in
// flight: send, wait for its update), finishes it and starts the next, until --duration. It
// checks every answer: the update's range is the chunk's, and the finished document covers
// exactly the tokens and chunks acknowledged (no acknowledged chunk lost). Reports throughput,
// per-chunk latency percentiles (send to update), documents, and errors by gRPC status code;
// with --server_pid, the server's resident memory before, at the end, and after --settle.
//
//   proteus_load --server 127.0.0.1:50051 --sessions 64 --duration 60s --doc_tokens 4096
//                --chunk_tokens 512 [--chunk_interval 0s] [--server_pid PID] [--token_file F]
//
// Loopback or a test cluster only: it is a load generator.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "proteus/v1/encoder.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "proteus_server address");
ABSL_FLAG(std::string, token_file, "", "bearer token file (first token line)");
ABSL_FLAG(int, sessions, 16, "concurrent sessions (one thread each)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(30), "how long to keep starting chunks");
ABSL_FLAG(int64_t, doc_tokens, 4096, "tokens per document");
ABSL_FLAG(int64_t, chunk_tokens, 512, "tokens per chunk");
ABSL_FLAG(absl::Duration, chunk_interval, absl::ZeroDuration(),
          "pause between a chunk's update and the next chunk (0: as fast as answered)");
ABSL_FLAG(int, server_pid, 0, "read this process's resident memory (Linux) before and after");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(5),
          "with --server_pid: wait this long after the load before the last memory reading");

namespace proteus::bench {
namespace {

int64_t ResidentKiB(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

struct Totals {
  std::mutex mu;
  std::vector<double> latency_ms;
  std::map<std::string, int64_t> errors;  // gRPC code name -> count
  int64_t chunks = 0, tokens = 0, documents = 0, lost = 0;
};

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "?";
}

// One session's documents until `deadline`. Records into `totals`.
void RunSession(const client::Connection& connection, int index, absl::Time deadline,
                Totals* totals) {
  std::mt19937 random(1234 + index);
  const int64_t doc_tokens = absl::GetFlag(FLAGS_doc_tokens);
  const int64_t chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  const absl::Duration interval = absl::GetFlag(FLAGS_chunk_interval);
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    connection.Prepare(&context);
    auto stream = connection.encoder().StreamEncode(&context);
    v1::StreamEncodeRequest request;
    request.mutable_open();
    v1::StreamEncodeResponse response;
    std::vector<double> latencies;
    int64_t acknowledged = 0;
    uint64_t chunks = 0;
    bool ok = stream->Write(request) && stream->Read(&response) && response.has_opened();
    for (int64_t start = 0; ok && start < doc_tokens && absl::Now() < deadline;
         start += chunk_tokens) {
      const int64_t n = std::min(chunk_tokens, doc_tokens - start);
      std::string bytes(static_cast<size_t>(n), ' ');
      for (char& c : bytes) c = static_cast<char>('a' + random() % 26);
      request.Clear();
      request.mutable_chunk()->set_chunk_number(chunks);
      request.mutable_chunk()->set_data(bytes);
      const absl::Time sent = absl::Now();
      ok = stream->Write(request) && stream->Read(&response) && response.has_update();
      if (!ok) break;
      latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
      if (response.update().start() != start || response.update().end() != start + n) {
        std::fprintf(stderr, "session %d: chunk %llu answered [%lld, %lld), sent [%lld, %lld)\n",
                     index, static_cast<unsigned long long>(chunks),
                     static_cast<long long>(response.update().start()),
                     static_cast<long long>(response.update().end()),
                     static_cast<long long>(start), static_cast<long long>(start + n));
        ok = false;
        break;
      }
      acknowledged = start + n;
      ++chunks;
      if (interval > absl::ZeroDuration()) absl::SleepFor(interval);
    }
    bool finished = false;
    if (ok && acknowledged > 0) {
      request.Clear();
      request.mutable_finish();
      finished = stream->Write(request) && stream->Read(&response) && response.has_result();
    }
    stream->WritesDone();
    while (stream->Read(&response)) {
    }
    const grpc::Status status = stream->Finish();
    std::lock_guard<std::mutex> lock(totals->mu);
    totals->latency_ms.insert(totals->latency_ms.end(), latencies.begin(), latencies.end());
    totals->chunks += static_cast<int64_t>(chunks);
    totals->tokens += acknowledged;
    if (!status.ok()) {
      ++totals->errors[CodeName(status.error_code())];
    } else if (finished) {
      ++totals->documents;
      // Every acknowledged chunk is in the document: its token and chunk counts agree.
      if (response.result().tokens() != acknowledged || response.result().chunks() != chunks) {
        ++totals->lost;
      }
    }
  }
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i];
}

int Run() {
  client::ConnectionOptions options;
  options.server = absl::GetFlag(FLAGS_server);
  options.token_file = absl::GetFlag(FLAGS_token_file);
  absl::StatusOr<client::Connection> connection = client::Connection::Connect(options);
  if (!connection.ok()) {
    std::fprintf(stderr, "proteus_load: %s\n", std::string(connection.status().message()).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_sessions) < 1 || absl::GetFlag(FLAGS_doc_tokens) < 1 ||
      absl::GetFlag(FLAGS_chunk_tokens) < 1) {
    std::fprintf(stderr, "proteus_load: --sessions, --doc_tokens and --chunk_tokens must be >= 1\n");
    return 2;
  }
  const int pid = absl::GetFlag(FLAGS_server_pid);
  const int64_t rss_before = pid > 0 ? ResidentKiB(pid) : -1;
  Totals totals;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::GetFlag(FLAGS_duration);
  std::vector<std::thread> threads;
  for (int i = 0; i < absl::GetFlag(FLAGS_sessions); ++i) {
    threads.emplace_back(RunSession, std::cref(*connection), i, deadline, &totals);
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t rss_end = pid > 0 ? ResidentKiB(pid) : -1;
  if (pid > 0) absl::SleepFor(absl::GetFlag(FLAGS_settle));
  const int64_t rss_after = pid > 0 ? ResidentKiB(pid) : -1;

  std::sort(totals.latency_ms.begin(), totals.latency_ms.end());
  std::printf("proteus_load: %d sessions for %.1f s against %s: %lld chunks, %lld tokens, "
              "%lld documents finished\n",
              absl::GetFlag(FLAGS_sessions), seconds, options.server.c_str(),
              static_cast<long long>(totals.chunks), static_cast<long long>(totals.tokens),
              static_cast<long long>(totals.documents));
  std::printf("throughput: %.0f tokens/s, %.1f chunks/s\n", totals.tokens / seconds,
              totals.chunks / seconds);
  std::printf("chunk latency (send to update), ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
              Percentile(totals.latency_ms, 0.5), Percentile(totals.latency_ms, 0.9),
              Percentile(totals.latency_ms, 0.99),
              totals.latency_ms.empty() ? 0.0 : totals.latency_ms.back());
  std::printf("acknowledged chunks missing from a finished document: %lld\n",
              static_cast<long long>(totals.lost));
  std::string errors;
  for (const auto& [code, count] : totals.errors) absl::StrAppend(&errors, " ", code, "=", count);
  std::printf("streams that ended in error:%s\n", errors.empty() ? " none" : errors.c_str());
  if (pid > 0) {
    std::printf("server resident memory: %lld MiB before, %lld MiB at the end, %lld MiB %s later\n",
                static_cast<long long>(rss_before / 1024), static_cast<long long>(rss_end / 1024),
                static_cast<long long>(rss_after / 1024),
                absl::FormatDuration(absl::GetFlag(FLAGS_settle)).c_str());
  }
  return totals.errors.empty() && totals.lost == 0 ? 0 : 1;
}

}  // namespace
}  // namespace proteus::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return proteus::bench::Run();
}
