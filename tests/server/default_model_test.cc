// Where the server finds its model without --model: the override must be right if given, the
// first candidate holding a model wins, and not finding one is an error that says where it looked
// and what to pass — never a silent random model.
#include "server/default_model.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"

namespace proteus {
namespace {

std::string Dir(const std::string& name, bool with_model) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/default_model_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (with_model) std::ofstream(dir + "/config.json") << "{}";
  return dir;
}

TEST(DefaultModelTest, FirstCandidateHoldingAModelWins) {
  const std::string empty = Dir("empty", false), a = Dir("a", true), b = Dir("b", true);
  auto found = FindDefaultModel("", {empty + "/missing", empty, a, b});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, a);
}

TEST(DefaultModelTest, OverrideMustHoldAModel) {
  const std::string a = Dir("oa", true), empty = Dir("oempty", false);
  auto found = FindDefaultModel(a, {});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, a);
  // A wrong override is an error even when a candidate would do.
  auto wrong = FindDefaultModel(empty, {a});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(wrong.status().message(), "PROTEUS_DEFAULT_MODEL=" + empty))
      << wrong.status();
}

TEST(DefaultModelTest, NotFoundNamesEveryPlaceAndTheWayOut) {
  const std::string empty = Dir("nf", false);
  auto found = FindDefaultModel("", {empty, "/nonexistent/models/default"});
  ASSERT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  const std::string message(found.status().message());
  EXPECT_TRUE(absl::StrContains(message, empty)) << message;
  EXPECT_TRUE(absl::StrContains(message, "/nonexistent/models/default")) << message;
  EXPECT_TRUE(absl::StrContains(message, "--model DIR")) << message;
  EXPECT_TRUE(absl::StrContains(message, "--random_init")) << message;
}

TEST(DefaultModelTest, CandidatesStartNextToTheBinary) {
  const std::vector<std::string> candidates = DefaultModelCandidates();
  ASSERT_FALSE(candidates.empty());
  EXPECT_TRUE(absl::EndsWith(candidates.front(), "/models/default")) << candidates.front();
}

}  // namespace
}  // namespace proteus
