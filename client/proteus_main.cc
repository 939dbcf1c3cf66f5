// proteus: the command-line client of proteus_server.
//
//   proteus encode FILE...            stream files (any size) and print or write embeddings
//   proteus resume SESSION_ID FILE    continue an interrupted `encode` of FILE, then finish it
//   proteus info                      the served model and the server's limits
//   proteus health                    grpc.health.v1 status (exit 0 only when SERVING)
//   proteus watch                     the routing log bus, live
//
// Connection flags work for every command: --server, --tls/--ca_cert, --client_cert/--client_key
// (mutual TLS), --token_file. `proteus --help` lists every flag.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/marshalling.h"

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "client/connection.h"
#include "client/document_source.h"
#include "client/output_writers.h"
#include "client/progress_bar.h"
#include "client/routing_watch.h"
#include "client/stream_encoder.h"
#include "google/protobuf/util/json_util.h"
#include "model/tokenizer.h"

ABSL_FLAG(std::string, server, "localhost:50051", "proteus_server address, host:port");
ABSL_FLAG(bool, tls, false, "use TLS (implied by --ca_cert or --client_cert)");
ABSL_FLAG(std::string, ca_cert, "", "PEM CA bundle to trust (default: the system's roots)");
ABSL_FLAG(std::string, client_cert, "", "PEM client certificate chain (mutual TLS)");
ABSL_FLAG(std::string, client_key, "", "PEM private key of --client_cert");
ABSL_FLAG(std::string, server_name, "", "name to check the server certificate against");
ABSL_FLAG(std::string, token_file, "",
          "file whose first line is the bearer token (also: $PROTEUS_TOKEN)");
ABSL_FLAG(std::string, out, "",
          "encode/resume: write FILE.json, FILE.npy (document embeddings) or FILE.safetensors; "
          "default: JSON on stdout");
ABSL_FLAG(int64_t, chunk_tokens, 0, "tokens per chunk; 0: the server's max_chunk_tokens");
ABSL_FLAG(bool, hidden_states, false, "also fetch per-token hidden states (large)");
ABSL_FLAG(bool, log_likelihoods, false, "also fetch per-token log-likelihoods");
ABSL_FLAG(bool, ids, false, "inputs are JSON arrays of token ids instead of raw bytes");
ABSL_FLAG(int64_t, max_resident_tokens, 0,
          "KV budget of each new session in tokens per layer; 0: the server's default");
ABSL_FLAG(std::string, affinity_key, "",
          "encode/resume: the x-proteus-session header that keeps a document's calls on one "
          "replica behind Envoy (encode: default a random key per document; resume: the key "
          "encode printed)");
ABSL_FLAG(int64_t, detach_after_tokens, 0,
          "encode: stop after this many tokens, leaving the session open for `proteus resume`");
ABSL_FLAG(std::string, progress, "auto", "progress bar: auto (when stderr is a terminal), "
          "always, never");
ABSL_FLAG(std::string, service, "", "health: the service to ask about (\"\": the server)");
ABSL_FLAG(std::vector<std::string>, layers, {},
          "watch: the layers to show, e.g. 0,5 (default: all)");
ABSL_FLAG(int64_t, max_events, 0, "watch: stop after this many events; 0: until interrupted");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "info/health: the call's deadline");

namespace proteus::client {
namespace {

constexpr char kUsage[] = R"(the command-line client of proteus_server

  proteus encode FILE... [--out OUT.json|OUT.npy|OUT.safetensors] [--chunk_tokens N]
                         [--hidden_states] [--log_likelihoods] [--ids]
  proteus resume SESSION_ID FILE [--out ...]
  proteus info
  proteus health [--service NAME]
  proteus watch [--layers 0,5] [--max_events N]

connection: --server HOST:PORT  --tls  --ca_cert CA.pem  --client_cert C.pem --client_key C.key
            --server_name NAME  --token_file FILE (or $PROTEUS_TOKEN)
Run `proteus --helpfull` for every flag.)";

int Fail(const absl::Status& s) {
  std::cerr << "proteus: " << s.message() << std::endl;
  return 1;
}

absl::StatusOr<Connection> ConnectFromFlags() {
  ConnectionOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.tls = absl::GetFlag(FLAGS_tls);
  o.ca_file = absl::GetFlag(FLAGS_ca_cert);
  o.cert_file = absl::GetFlag(FLAGS_client_cert);
  o.key_file = absl::GetFlag(FLAGS_client_key);
  o.server_name = absl::GetFlag(FLAGS_server_name);
  o.token_file = absl::GetFlag(FLAGS_token_file);
  if (o.token_file.empty()) {
    if (const char* env = std::getenv("PROTEUS_TOKEN")) o.token = env;
  }
  return Connection::Connect(o);
}

absl::StatusOr<v1::ModelInfo> GetInfo(const Connection& c) {
  grpc::ClientContext context;
  c.Prepare(&context, absl::GetFlag(FLAGS_timeout));
  v1::ModelInfo info;
  grpc::Status s = c.encoder().GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat(c.target(), ": ", s.error_message()));
  }
  return info;
}

int Info(const Connection& c) {
  absl::StatusOr<v1::ModelInfo> info = GetInfo(c);
  if (!info.ok()) return Fail(info.status());
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(*info, &json, options).ok()) return 1;
  std::cout << json;
  return 0;
}

int Health(const Connection& c) {
  grpc::ClientContext context;
  c.Prepare(&context, absl::GetFlag(FLAGS_timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = c.health().Check(&context, request, &response);
  if (!s.ok()) {
    std::cout << "UNREACHABLE (" << s.error_message() << ")" << std::endl;
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            << std::endl;
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

absl::StatusOr<std::unique_ptr<DocumentSource>> OpenSource(const std::string& path,
                                                           int vocab_size) {
  if (!absl::GetFlag(FLAGS_ids)) return OpenByteFile(path);
  absl::StatusOr<std::unique_ptr<DocumentSource>> file = OpenByteFile(path);
  if (!file.ok()) return file.status();
  v1::Chunk whole;
  if (absl::Status s = (*file)->Fill(0, (*file)->size(), &whole); !s.ok()) return s;
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIdsJson(whole.data(), vocab_size);
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", ids.status().message()));
  return TokenIdSource(path, *std::move(ids));
}

std::string ResumeCommand(const std::string& id, const std::string& key, const std::string& file) {
  return absl::StrCat("proteus resume ", key.empty() ? "" : absl::StrCat("--affinity_key=", key, " "),
                      id, " ", file);
}

// `encode` and `resume`: each file through StreamEncode, then the output.
int Encode(const Connection& c, const std::vector<std::string>& files,
           const std::string& resume_id) {
  absl::StatusOr<v1::ModelInfo> info = GetInfo(c);
  if (!info.ok()) return Fail(info.status());
  if (info->random_init()) {
    std::cerr << "proteus: note: the server runs a random-initialised model (" << info->model()
              << "): embeddings are deterministic but carry no meaning" << std::endl;
  }
  std::string progress = absl::GetFlag(FLAGS_progress);
  const bool bar = progress == "always" || (progress == "auto" && isatty(2));
  EncodeOptions options;
  options.chunk_tokens = absl::GetFlag(FLAGS_chunk_tokens);
  options.outputs.set_hidden_states(absl::GetFlag(FLAGS_hidden_states));
  options.outputs.set_log_likelihoods(absl::GetFlag(FLAGS_log_likelihoods));
  options.session.set_max_resident_tokens(absl::GetFlag(FLAGS_max_resident_tokens));
  options.session_id = resume_id;
  options.affinity_key = absl::GetFlag(FLAGS_affinity_key);
  options.stop_after_tokens = absl::GetFlag(FLAGS_detach_after_tokens);
  std::vector<NamedDocument> docs;
  for (const std::string& file : files) {
    absl::StatusOr<std::unique_ptr<DocumentSource>> source = OpenSource(file, info->vocab_size());
    if (!source.ok()) return Fail(source.status());
    ProgressBar progress_bar(file, (*source)->size(), bar);
    options.progress = [&](int64_t done, int64_t) { progress_bar.Update(done); };
    options.on_session = [&](const std::string& id, const std::string& key) {
      std::cerr << "proteus: " << file << ": session " << id << " (if interrupted: "
                << ResumeCommand(id, key, file) << ")" << std::endl;
    };
    absl::StatusOr<EncodedDocument> doc = StreamEncodeDocument(c, **source, options);
    progress_bar.Finish();
    if (!doc.ok()) return Fail(doc.status());
    if (doc->finished) {
      const auto& e = doc->result.document_embedding();
      std::cerr << absl::StrFormat(
                       "proteus: %s: %d tokens in %d chunks, %.4f bits per byte, "
                       "embedding[0:4] = [%.5f, %.5f, %.5f, %.5f]%s",
                       file, doc->result.tokens(), doc->result.chunks(),
                       doc->result.bits_per_byte(), e.size() > 0 ? e[0] : 0,
                       e.size() > 1 ? e[1] : 0, e.size() > 2 ? e[2] : 0, e.size() > 3 ? e[3] : 0,
                       doc->reconnects > 0 ? absl::StrCat(", ", doc->reconnects, " reconnects")
                                           : "")
                << (doc->restarts > 0 ? absl::StrCat(" (the session was lost ", doc->restarts,
                                                     " times and the document restarted)")
                                      : "")
                << std::endl;
    } else {
      std::cerr << "proteus: " << file << ": detached after "
                << (doc->chunks.empty() ? 0 : doc->chunks.back().end) << " tokens; continue with "
                << ResumeCommand(doc->session_id, doc->affinity_key, file) << std::endl;
    }
    if (doc->missing_chunks > 0) {
      std::cerr << "proteus: " << file << ": note: per-chunk outputs of " << doc->missing_chunks
                << " chunks were not received (applied before a resume); the document "
                   "embedding covers the whole document"
                << std::endl;
    }
    docs.push_back({file, *std::move(doc)});
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cout << ToJson(docs, info->d_model());
    return 0;
  }
  if (absl::Status s = WriteOutput(out, docs, info->d_model()); !s.ok()) return Fail(s);
  std::cerr << "proteus: wrote " << out << std::endl;
  return 0;
}

int Watch(const Connection& c) {
  WatchOptions options;
  for (const std::string& layer : absl::GetFlag(FLAGS_layers)) {
    int value = 0;
    if (!absl::SimpleAtoi(layer, &value)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--layers: expected comma-separated layer numbers, got \"", layer, "\"")));
    }
    options.layers.push_back(value);
  }
  options.max_events = absl::GetFlag(FLAGS_max_events);
  std::cerr << "proteus: watching routing on " << c.target() << " (Ctrl-C to stop)" << std::endl;
  if (absl::Status s = WatchRouting(c, options, std::cout); !s.ok()) return Fail(s);
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  const std::string command = args[1];
  std::vector<std::string> rest(args.begin() + 2, args.end());
  absl::StatusOr<Connection> connection = ConnectFromFlags();
  if (!connection.ok()) return Fail(connection.status());
  if (command == "info" && rest.empty()) return Info(*connection);
  if (command == "health" && rest.empty()) return Health(*connection);
  if (command == "watch" && rest.empty()) return Watch(*connection);
  if (command == "encode" && !rest.empty()) return Encode(*connection, rest, "");
  if (command == "resume" && rest.size() == 2) {
    return Encode(*connection, {rest[1]}, rest[0]);
  }
  std::cerr << "proteus: bad command line\n\n" << kUsage << std::endl;
  return 2;
}

}  // namespace
}  // namespace proteus::client

int main(int argc, char** argv) { return proteus::client::Main(argc, argv); }
