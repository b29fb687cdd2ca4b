// What many test files share: fnet's thread setting for a scope, and a message check.
#pragma once

#include <fnet/core/threads.hpp>

#include <gtest/gtest.h>

#include <string>

namespace fnet_test {

// Sets fnet's intra-op thread count for a scope (or only guards it), and puts back the setting it found
// however the test ends.
struct ThreadSetting {
  ThreadSetting() = default;
  explicit ThreadSetting(int threads) { fnet::set_num_threads(threads); }
  ThreadSetting(const ThreadSetting&) = delete;
  ThreadSetting& operator=(const ThreadSetting&) = delete;
  ~ThreadSetting() { fnet::set_num_threads(saved); }
  int saved = fnet::num_threads();
};

// Whether an exception message contains `text`, showing the message when it does not.
inline ::testing::AssertionResult Mentions(const char* message, const std::string& text) {
  if (std::string(message).find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << message << "\" does not mention \"" << text << "\"";
}

}  // namespace fnet_test
