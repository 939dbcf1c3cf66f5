// proteus_server as a process (issue 9, fault injection at the binary level): SIGTERM in the
// middle of a load lets the chunks already read finish, refuses new work with UNAVAILABLE and
// exits 0; a truncated or corrupt checkpoint, or a config that does not match the weights,
// stops the start-up with a non-zero exit and an error naming the file and the fault.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "model/config.h"
#include "model/encoder.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::MakeChunk;
using testing::MakeDocument;
using testing::Stream;

std::string ServerBinary() {
  const char* env = std::getenv("PROTEUS_SERVER_BIN");
  return env != nullptr ? env : "server/proteus_server";  // Bazel runfiles
}

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("proteus_process_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A proteus_server child process with its stderr in a file. Killed (SIGKILL) if still running
// when destroyed.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& flags, const std::string& log_path)
      : log_path_(log_path) {
    std::vector<std::string> args = {ServerBinary()};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !status_.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  void Signal(int signal) { kill(pid_, signal); }
  std::string Log() const { return testing::ReadFile(log_path_); }

  // The wait status once the process exited, or nullopt after `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!status_.has_value()) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = status;
      } else if (absl::Now() >= deadline) {
        break;
      } else {
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
    return status_;
  }

  // host:port from the "listening on" line; "" if the process exited first or after `timeout`.
  std::string WaitForAddress(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const std::string log = Log();
      const size_t at = log.find("listening on ");
      if (at != std::string::npos) {
        const size_t start = at + std::strlen("listening on ");
        const size_t end = log.find_first_of(" ,", start);
        if (end != std::string::npos) return log.substr(start, end - start);
      }
      if (Wait(absl::ZeroDuration()).has_value()) return "";
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }

  // Polls the log for `text`.
  bool WaitForLog(const std::string& text, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Log().find(text) == std::string::npos) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return true;
  }

 private:
  const std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

std::vector<std::string> CommonFlags() {
  return {"--listen", "127.0.0.1:0", "--device", "cpu", "--threads", "1", "--metrics_port", "0"};
}

// Waits until the server at `address` reports SERVING.
bool WaitUntilServing(const std::string& address, absl::Duration timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  const absl::Time deadline = absl::Now() + timeout;
  while (testing::HealthOf(health.get()) != "SERVING") {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

TEST(ServerProcessTest, SigtermUnderLoadFinishesInFlightChunksRefusesNewWorkAndExitsZero) {
  const std::string dir = TempDir("sigterm");
  ASSERT_TRUE(SaveModelConfig(testing::TinyConfig(), dir + "/config.json").ok());
  std::vector<std::string> flags = CommonFlags();
  flags.insert(flags.end(), {"--random_config", dir + "/config.json", "--shutdown_grace", "60s",
                             "--max_chunks_in_flight", "2"});
  ServerProcess process(flags, dir + "/server.log");
  ASSERT_TRUE(process.started());
  const std::string address = process.WaitForAddress(absl::Seconds(60));
  ASSERT_FALSE(address.empty()) << process.Log();
  ASSERT_TRUE(WaitUntilServing(address, absl::Seconds(60))) << process.Log();

  // Clients that keep two chunks in flight each, until the server ends their streams.
  constexpr int kClients = 4;
  constexpr size_t kChunk = 1024;
  constexpr uint64_t kChunks = 1000;  // far more than the test lets them send
  struct Client {
    std::atomic<uint64_t> updates{0};
    uint64_t updates_after_drain = 0;
    uint64_t sent = 0;
    bool in_order = true;
    absl::Status end = absl::UnknownError("not run");
  };
  std::vector<Client> clients(kClients);
  std::atomic<bool> draining{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client& c = clients[i];
      auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
      auto stub = v1::Encoder::NewStub(channel);
      Stream stream(stub.get());
      absl::StatusOr<v1::SessionOpened> opened = stream.Open();
      if (!opened.ok()) {
        c.end = opened.status();
        return;
      }
      const std::vector<int32_t> piece = MakeDocument(kChunk, 500 + i);
      uint64_t received = 0;
      while (true) {
        while (c.sent < received + 2 && c.sent < kChunks && stream.Send(MakeChunk(c.sent, piece))) {
          ++c.sent;
        }
        absl::StatusOr<v1::StreamEncodeResponse> response = stream.Read();
        if (!response.ok()) {
          c.end = response.status();
          return;
        }
        c.in_order &= response->update().chunk_number() == received &&
                      response->update().end() == static_cast<int64_t>((received + 1) * kChunk);
        if (draining.load()) ++c.updates_after_drain;
        c.updates = ++received;
      }
    });
  }
  // Load established: every client has had updates.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (Client& c : clients) {
    while (c.updates.load() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    EXPECT_GE(c.updates.load(), 2u);
  }

  process.Signal(SIGTERM);
  ASSERT_TRUE(process.WaitForLog("shutting down", absl::Seconds(30))) << process.Log();
  draining = true;
  // New sessions are refused while the server drains (or, once it is gone, cannot connect).
  {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = v1::Encoder::NewStub(channel);
    Stream late(stub.get());
    const absl::Status refused = late.Open().status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  }
  for (std::thread& t : threads) t.join();

  uint64_t after_drain = 0;
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE(::testing::Message() << "client " << i);
    const Client& c = clients[i];
    EXPECT_TRUE(c.in_order);
    // Ended by the drain, not cancelled at the grace deadline, not cut by a crash.
    EXPECT_EQ(c.end.code(), absl::StatusCode::kUnavailable) << c.end;
    EXPECT_THAT(std::string(c.end.message()), HasSubstr("the server is shutting down")) << c.end;
    // The chunks it sent beyond the updates it got were refused, not lost silently: the
    // message says every chunk answered was applied.
    EXPECT_GE(c.sent, c.updates.load());
    after_drain += c.updates_after_drain;
  }
  // The chunks in flight when the drain began finished, and their updates arrived.
  EXPECT_GE(after_drain, 1u);
  std::printf("updates delivered after the drain began: %llu\n",
              static_cast<unsigned long long>(after_drain));

  const std::optional<int> status = process.Wait(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << "still running after SIGTERM\n" << process.Log();
  ASSERT_TRUE(WIFEXITED(*status)) << "killed by signal " << WTERMSIG(*status) << "\n"
                                  << process.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << process.Log();
  EXPECT_THAT(process.Log(), HasSubstr("shut down cleanly"));
}

struct StartUp {
  int exit_code = -1;  // -1: killed by a signal or still running
  std::string log;
};

// Runs the server on checkpoint `dir` until it exits (or, if it starts serving, SIGTERMs it).
StartUp RunOnCheckpoint(const std::string& dir, const std::string& log_path) {
  std::vector<std::string> flags = CommonFlags();
  flags.push_back("--model");
  flags.push_back(dir);
  ServerProcess process(flags, log_path);
  StartUp out;
  if (!process.WaitForAddress(absl::Seconds(60)).empty()) process.Signal(SIGTERM);  // it started
  const std::optional<int> status = process.Wait(absl::Seconds(60));
  if (status.has_value() && WIFEXITED(*status)) out.exit_code = WEXITSTATUS(*status);
  out.log = process.Log();
  return out;
}

TEST(ServerProcessTest, ACorruptOrMismatchedCheckpointStopsTheStartUpNamingTheFile) {
  const std::string dir = TempDir("checkpoint");
  ASSERT_TRUE(WriteRandomCheckpoint(testing::TinyConfig(), 5, dir).ok());
  const std::string weights_path = dir + "/model.safetensors";
  const std::string config_path = dir + "/config.json";
  const std::string weights = testing::ReadFile(weights_path);
  const std::string config = testing::ReadFile(config_path);
  ASSERT_GT(weights.size(), 1000u);

  // Intact, it starts (so what follows fails for the fault alone).
  std::vector<std::string> flags = CommonFlags();
  flags.push_back("--model");
  flags.push_back(dir);
  {
    ServerProcess process(flags, dir + "/intact.log");
    ASSERT_FALSE(process.WaitForAddress(absl::Seconds(60)).empty()) << process.Log();
    process.Signal(SIGTERM);
    const std::optional<int> status = process.Wait(absl::Seconds(60));
    ASSERT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << process.Log();
  }

  // Truncated in the tensor data: the file is shorter than its header says.
  WriteFile(weights_path, weights.substr(0, weights.size() / 2));
  StartUp truncated = RunOnCheckpoint(dir, dir + "/truncated.log");
  EXPECT_EQ(truncated.exit_code, 1) << truncated.log;
  EXPECT_THAT(truncated.log, HasSubstr(weights_path));
  EXPECT_THAT(truncated.log, HasSubstr("truncated"));
  EXPECT_THAT(truncated.log, Not(HasSubstr("listening on")));

  // Truncated inside the header.
  WriteFile(weights_path, weights.substr(0, 100));
  StartUp short_header = RunOnCheckpoint(dir, dir + "/short_header.log");
  EXPECT_EQ(short_header.exit_code, 1) << short_header.log;
  EXPECT_THAT(short_header.log, HasSubstr(weights_path));
  EXPECT_THAT(short_header.log, HasSubstr("truncated file?"));

  // A corrupt header: bytes in the middle of its JSON overwritten.
  std::string corrupt = weights;
  corrupt.replace(40, 8, "\x01\xff\"]}{,:");
  WriteFile(weights_path, corrupt);
  StartUp bad_header = RunOnCheckpoint(dir, dir + "/bad_header.log");
  EXPECT_EQ(bad_header.exit_code, 1) << bad_header.log;
  EXPECT_THAT(bad_header.log, HasSubstr(weights_path + ": header"));
  EXPECT_THAT(bad_header.log, Not(HasSubstr("listening on")));

  // Intact weights, but a config that does not describe them (a wider MLP).
  WriteFile(weights_path, weights);
  ModelConfig wider = testing::TinyConfig();
  wider.mlp_hidden = 256;
  ASSERT_TRUE(SaveModelConfig(wider, config_path).ok());
  StartUp mismatch = RunOnCheckpoint(dir, dir + "/mismatch.log");
  EXPECT_EQ(mismatch.exit_code, 1) << mismatch.log;
  EXPECT_THAT(mismatch.log, HasSubstr("layers.0.mlp.w_gate: expected shape [256, 64]"));
  EXPECT_THAT(mismatch.log, HasSubstr(weights_path));
  EXPECT_THAT(mismatch.log, HasSubstr(config_path));
  EXPECT_THAT(mismatch.log, Not(HasSubstr("listening on")));

  // A corrupt config.json.
  WriteFile(config_path, config.substr(0, config.size() / 2));
  StartUp bad_config = RunOnCheckpoint(dir, dir + "/bad_config.log");
  EXPECT_EQ(bad_config.exit_code, 1) << bad_config.log;
  EXPECT_THAT(bad_config.log, HasSubstr(config_path));
}

TEST(ServerProcessTest, WithoutModelItServesTheShippedDefaultModel) {
  const std::string dir = TempDir("default_model");
  ServerProcess process(CommonFlags(), dir + "/server.log");
  ASSERT_TRUE(process.started());
  const std::string address = process.WaitForAddress(absl::Seconds(120));
  ASSERT_FALSE(address.empty()) << process.Log();
  ASSERT_TRUE(WaitUntilServing(address, absl::Seconds(120))) << process.Log();
  EXPECT_THAT(process.Log(), HasSubstr("models/proteus-small"));
  EXPECT_THAT(process.Log(), Not(HasSubstr("RANDOM-INITIALISED")));
  process.Signal(SIGTERM);
  const std::optional<int> status = process.Wait(absl::Seconds(60));
  ASSERT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << process.Log();
}

TEST(ServerProcessTest, AModelAndARandomModelTogetherAreRefused) {
  const std::string dir = TempDir("model_and_random");
  ASSERT_TRUE(WriteRandomCheckpoint(testing::TinyConfig(), 5, dir).ok());
  std::vector<std::string> flags = CommonFlags();
  flags.insert(flags.end(), {"--model", dir, "--random_init"});
  ServerProcess process(flags, dir + "/server.log");
  const std::optional<int> status = process.Wait(absl::Seconds(60));
  ASSERT_TRUE(status.has_value() && WIFEXITED(*status)) << process.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 1) << process.Log();
  EXPECT_THAT(process.Log(), HasSubstr("exclude each other"));
}

}  // namespace
}  // namespace proteus::server
