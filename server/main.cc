// proteus_server: serves one resident Proteus model over gRPC (DESIGN.md §3).
//
//   proteus_server [--model DIR] [--listen 0.0.0.0:50051] [--device auto|cpu|cuda] ...
//
// Without --model it serves the shipped default model (server/default_model.h).
// Health reports SERVING only after a real forward pass on the device succeeded. SIGTERM or
// SIGINT starts a graceful shutdown: NOT_SERVING, new work refused, chunks already read
// finished, then exit; a second signal exits at once. `--help` lists every flag.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "model/config.h"
#include "model/encoder.h"
#include "server/default_model.h"
#include "server/proteus_server.h"

ABSL_FLAG(std::string, model, "",
          "checkpoint directory (config.json + model.safetensors); empty: the shipped default "
          "model (models/proteus-small; $PROTEUS_DEFAULT_MODEL overrides where it is looked for)");
ABSL_FLAG(bool, random_init, false,
          "serve a deterministic random-initialised model of the default config instead "
          "(embeddings carry no meaning; for tests and load runs)");
ABSL_FLAG(std::string, random_config, "",
          "serve a deterministic random-initialised model of this config.json instead "
          "(implies --random_init)");
ABSL_FLAG(uint64_t, random_seed, 0, "with --random_init: the seed of the random weights");
ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "comma-separated host:port addresses to listen on (port 0: any free port)");
ABSL_FLAG(std::string, device, "auto", "cpu, cuda, or auto (cuda when a GPU is usable)");
ABSL_FLAG(std::string, dtype, "float32", "compute dtype: float32, bfloat16 (float16 on cuda)");
ABSL_FLAG(std::string, kv_dtype, "", "KV-cache dtype (default: --dtype)");
ABSL_FLAG(int, threads, 0, "CPU threads for the model; 0: one per hardware thread");
ABSL_FLAG(int64_t, max_resident_tokens, 0,
          "session memory budget: KV-cache tokens per layer per session, beyond which old "
          "blocks are evicted; the most a client may ask for; 0: unlimited");
ABSL_FLAG(int, max_sessions, 64, "open documents at once (running Encode calls count)");
ABSL_FLAG(int64_t, max_kv_cache_bytes, 0,
          "KV-cache memory all open sessions together may reserve, in bytes: each session "
          "(running Encode calls too) reserves its worst case, max_resident_tokens x layers x "
          "K,V bytes per token, when it opens and returns it when it finishes or expires; new "
          "sessions beyond it get RESOURCE_EXHAUSTED. Needs --max_resident_tokens; 0: no cap");
ABSL_FLAG(int64_t, max_chunk_tokens, 65536, "largest chunk and largest Encode document, in tokens");
ABSL_FLAG(int64_t, max_document_tokens, 0, "longest streamed document in tokens; 0: unlimited");
ABSL_FLAG(int, max_chunks_in_flight, 2, "chunks a stream may be ahead of its answers");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Minutes(10),
          "a session without activity for this long is dropped (e.g. 10m, 90s)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(30),
          "on SIGTERM, how long in-flight chunks may run before the rest is cancelled");
ABSL_FLAG(int, metrics_port, 9090,
          "port of the Prometheus exposer (/metrics, plain HTTP, on every interface); 0: off");
ABSL_FLAG(int64_t, telemetry_window_tokens, 65536,
          "the routing gauges (entropy, perplexity, unused gates, balance) cover this many of "
          "the most recent tokens");
ABSL_FLAG(int, telemetry_watcher_queue, 1024,
          "routing events a slow WatchRouting subscriber may have waiting before it loses new "
          "ones (counted in proteus_telemetry_events_dropped_total)");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate chain (TLS); with --tls_key");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA bundle: require client certificates signed by it (mutual TLS)");
ABSL_FLAG(std::string, token_file, "",
          "file of bearer tokens, one per line; every Encoder call must then carry "
          "'authorization: Bearer <token>'");

namespace proteus::server {
namespace {

void Log(const std::string& line) { std::cerr << "proteus_server: " << line << std::endl; }

absl::StatusOr<EncoderOptions> EncoderOptionsFromFlags(const std::string& device_flag) {
  EncoderOptions options;
  absl::StatusOr<DType> dtype = ParseFloatDType(absl::GetFlag(FLAGS_dtype), "--dtype");
  if (!dtype.ok()) return dtype.status();
  options.dtype = *dtype;
  options.kv_dtype = *dtype;
  if (!absl::GetFlag(FLAGS_kv_dtype).empty()) {
    absl::StatusOr<DType> kv = ParseFloatDType(absl::GetFlag(FLAGS_kv_dtype), "--kv_dtype");
    if (!kv.ok()) return kv.status();
    options.kv_dtype = *kv;
  }
  if (device_flag != "auto") {
    absl::StatusOr<DeviceKind> device = ParseDeviceKind(device_flag, "--device");
    if (!device.ok()) return device.status();
    options.device = *device;
  }
  options.num_threads = absl::GetFlag(FLAGS_threads);
  return options;
}

absl::StatusOr<std::unique_ptr<Encoder>> OpenModel(const EncoderOptions& options,
                                                   ModelDescription* description) {
  const std::string config_path = absl::GetFlag(FLAGS_random_config);
  const bool random = absl::GetFlag(FLAGS_random_init) || !config_path.empty();
  std::string dir = absl::GetFlag(FLAGS_model);
  if (!dir.empty() && random) {
    return absl::InvalidArgumentError(
        "--model and --random_init/--random_config exclude each other: pick one model");
  }
  if (!random) {
    std::string flag = "--model ";
    if (dir.empty()) {
      const char* env = std::getenv("PROTEUS_DEFAULT_MODEL");
      absl::StatusOr<std::string> found =
          FindDefaultModel(env != nullptr ? env : "", DefaultModelCandidates());
      if (!found.ok()) return found.status();
      dir = *found;
      flag = "default model ";
    }
    description->model = dir;
    absl::StatusOr<std::unique_ptr<Encoder>> encoder = Encoder::Open(dir, options);
    if (!encoder.ok()) {
      return absl::Status(encoder.status().code(),
                          absl::StrCat(flag, dir, ": ", encoder.status().message()));
    }
    return encoder;
  }
  ModelConfig config;  // every field at its default
  if (!config_path.empty()) {
    absl::StatusOr<ModelConfig> loaded = LoadModelConfig(config_path);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("--random_config ", loaded.status().message()));
    }
    config = *loaded;
  }
  const uint64_t seed = absl::GetFlag(FLAGS_random_seed);
  description->model = absl::StrCat("random-init(seed=", seed, ")");
  description->random_init = true;
  return Encoder::OpenRandom(config, seed, options);
}

int Run() {
  // Signals are taken by sigwait below: block them before any thread exists, so every thread
  // (gRPC's, LibTorch's) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string device_flag = absl::GetFlag(FLAGS_device);
  absl::StatusOr<EncoderOptions> options = EncoderOptionsFromFlags(device_flag);
  if (!options.ok()) {
    Log(std::string(options.status().message()));
    return 2;
  }
  ModelDescription description;
  absl::StatusOr<std::unique_ptr<Encoder>> encoder;
  if (device_flag == "auto") {
    options->device = DeviceKind::kCuda;
    encoder = OpenModel(*options, &description);
    if (absl::IsFailedPrecondition(encoder.status())) {
      Log("--device auto: no usable CUDA device, running on cpu");
      options->device = DeviceKind::kCpu;
      encoder = OpenModel(*options, &description);
    }
  } else {
    encoder = OpenModel(*options, &description);
  }
  if (!encoder.ok()) {
    Log(std::string(encoder.status().message()));
    return 1;
  }
  if (description.random_init) {
    Log("WARNING: serving a RANDOM-INITIALISED model, " + description.model + ".");
    Log("WARNING: its embeddings are deterministic but carry NO MEANING. Leave out "
        "--random_init/--random_config to serve the shipped model, or pass --model DIR.");
  }

  ServerOptions server_options;
  server_options.listen_addresses =
      absl::StrSplit(absl::GetFlag(FLAGS_listen), ',', absl::SkipWhitespace());
  server_options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                        absl::GetFlag(FLAGS_client_ca)};
  server_options.token_file = absl::GetFlag(FLAGS_token_file);
  ServerLimits& limits = server_options.limits;
  limits.max_chunk_tokens = absl::GetFlag(FLAGS_max_chunk_tokens);
  limits.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  limits.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  limits.max_resident_tokens = absl::GetFlag(FLAGS_max_resident_tokens);
  limits.max_document_tokens = absl::GetFlag(FLAGS_max_document_tokens);
  limits.max_chunks_in_flight = absl::GetFlag(FLAGS_max_chunks_in_flight);
  limits.max_kv_cache_bytes = absl::GetFlag(FLAGS_max_kv_cache_bytes);
  server_options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (metrics_port < 0 || metrics_port > 65535) {
    Log(absl::StrCat("--metrics_port: expected 0 (off) to 65535, got ", metrics_port));
    return 1;
  }
  if (metrics_port > 0) server_options.metrics_address = absl::StrCat("0.0.0.0:", metrics_port);
  server_options.telemetry_window_tokens = absl::GetFlag(FLAGS_telemetry_window_tokens);
  server_options.telemetry_watcher_queue = absl::GetFlag(FLAGS_telemetry_watcher_queue);
  if (!server_options.token_file.empty() && server_options.tls.cert_file.empty()) {
    Log("WARNING: --token_file without --tls_cert: bearer tokens travel in plaintext");
  }

  const std::string device_name = (*encoder)->options().device == DeviceKind::kCuda ? "cuda" : "cpu";
  absl::StatusOr<std::unique_ptr<ProteusServer>> server =
      ProteusServer::Start(server_options, *std::move(encoder), description);
  if (!server.ok()) {
    Log(std::string(server.status().message()));
    return 1;
  }
  std::vector<std::string> bound;
  for (size_t i = 0; i < (*server)->ports().size(); ++i) {
    const std::string& address = server_options.listen_addresses[i];
    bound.push_back(absl::StrCat(address.substr(0, address.rfind(':')), ":", (*server)->ports()[i]));
  }
  const char* security = server_options.tls.cert_file.empty()       ? "plaintext"
                          : server_options.tls.client_ca_file.empty() ? "TLS"
                                                                      : "mutual TLS";
  Log(absl::StrCat("listening on ", absl::StrJoin(bound, ", "), " (", security,
                   server_options.token_file.empty() ? "" : ", bearer tokens", "), metrics ",
                   metrics_port > 0 ? absl::StrCat("on :", (*server)->metrics_port(), "/metrics")
                                    : std::string("off"),
                   ", model ",
                   description.model, " on ", device_name, "; health NOT_SERVING until warm-up"));
  if (absl::Status s = (*server)->WarmUp(); !s.ok()) {
    Log(absl::StrCat(s.message(), "; exiting"));
    (*server)->Shutdown(absl::ZeroDuration());
    return 1;
  }
  Log("warm-up forward pass succeeded: health SERVING");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  // Refuse new work first, so that the log line below is true when it appears (a test, or an
  // operator, that sees it and tries a new call gets UNAVAILABLE; found under TSan, where the
  // old order, log then drain, let such a call in).
  (*server)->BeginDrain();
  Log(absl::StrCat("received ", strsignal(signal_number), ": shutting down (grace ",
                   absl::FormatDuration(server_options.shutdown_grace),
                   "; a second signal exits at once)"));
  std::thread([signals]() mutable {
    int again = 0;
    sigwait(&signals, &again);
    static const char kMessage[] = "proteus_server: second signal: exiting now\n";
    (void)!write(2, kMessage, sizeof(kMessage) - 1);
    _exit(1);
  }).detach();
  (*server)->Shutdown(server_options.shutdown_grace);
  Log("shut down cleanly");
  return 0;
}

}  // namespace
}  // namespace proteus::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "serves a Proteus model over gRPC: proteus_server [--model DIR] [--listen HOST:PORT] ...");
  // --help lists this file's flags (absl's default looks for a file named after the program).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  return proteus::server::Run();
}
