// Many threads transforming through one shared FFT backend object (or copies sharing its cache) at once,
// lengths both already cached and new, checked against the long double reference; clear() between phases.
// Built with ThreadSanitizer in the tsan preset.
#include "fft_test_support.hpp"

#include <gtest/gtest.h>

#include <complex>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

namespace {

using fnet::fft::Direction;

constexpr unsigned thread_count = 8;

// Lengths every thread uses (planned by whichever thread comes first, then shared) plus two of its own.
std::vector<std::size_t> lengths_for(unsigned thread) {
  return {16, 64, 100, 128, 243, 20 + thread, 150 + 13 * thread};
}

template <class Backend, class T>
void expect_ok(const fnet_test::CallOutcome& outcome, std::size_t n, const std::string& what,
               std::string& failures) {
  const double bound = fnet_test::error_bound<Backend, T>(n);
  if (!outcome.problems.empty() || !(outcome.error <= bound))
    failures += what + " length " + std::to_string(n) + ": error " + std::to_string(outcome.error) +
                " (bound " + std::to_string(bound) + ") " + outcome.problems + "\n";
}

// One thread's work: every kind, float and double, both complex layouts, in and out of place.
template <class Backend>
std::string transform_all(const Backend& backend, unsigned thread) {
  std::string failures;
  for (const std::size_t n : lengths_for(thread)) {
    const auto& ref = fnet_test::reference(n);
    const auto rows = fnet_test::rows_layout(n, ref.rows, thread % 2 == 1);
    const auto columns = fnet_test::interleaved_layout(n, ref.rows, thread % 2 == 0);
    expect_ok<Backend, float>(
        fnet_test::checked_transform<float>(backend, ref, Direction::forward, rows, false), n,
        "float forward rows", failures);
    expect_ok<Backend, double>(
        fnet_test::checked_transform<double>(backend, ref, Direction::inverse, columns, true), n,
        "double inverse columns in place", failures);
    expect_ok<Backend, float>(fnet_test::checked_forward_real<float>(backend, ref, thread % 3 == 0), n,
                              "float forward real", failures);
    expect_ok<Backend, double>(fnet_test::checked_inverse_real<double>(backend, ref, thread % 3 == 1), n,
                               "double inverse real", failures);
  }
  return failures;
}

template <class Work>
std::vector<std::string> run_threads(const Work& work) {
  std::vector<std::string> failures(thread_count);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < thread_count; ++t)
    threads.emplace_back([&failures, &work, t] { failures[t] = work(t); });
  for (auto& thread : threads) thread.join();
  return failures;
}

void precompute_references() {
  for (unsigned t = 0; t < thread_count; ++t)
    for (const std::size_t n : lengths_for(t)) fnet_test::reference(n);
}

template <class Backend>
class FftConcurrency : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { precompute_references(); }
};

using Backends = ::testing::Types<
#if defined(FNET_HAS_FFTW)
    fnet::fft::Fftw,
#endif
    fnet::fft::Builtin, fnet::fft::DftMatrix>;

struct BackendName {
  template <class Backend>
  static std::string GetName(int) {
    return Backend::name;
  }
};

TYPED_TEST_SUITE(FftConcurrency, Backends, BackendName);

// Phase 1 builds plans/tables concurrently; phase 2 runs on the warm cache; clear() between (never during)
// them; phase 3 rebuilds after the clear.
TYPED_TEST(FftConcurrency, ThreadsSharingOneObjectGetCorrectResults) {
  const TypeParam backend;
  for (int phase = 1; phase <= 3; ++phase) {
    const auto failures = run_threads([&backend](unsigned t) { return transform_all(backend, t); });
    for (unsigned t = 0; t < thread_count; ++t)
      EXPECT_EQ(failures[t], "") << "phase " << phase << ", thread " << t;
    if (phase == 2) backend.clear();
  }
}

TYPED_TEST(FftConcurrency, ThreadsUsingCopiesOfOneObjectGetCorrectResults) {
  const TypeParam backend;
  const auto failures = run_threads([&backend](unsigned t) {
    const TypeParam mine = backend;  // shares backend's cache
    return transform_all(mine, t);
  });
  for (unsigned t = 0; t < thread_count; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
}

// The three backends at once, so FFTW planning (under its global lock) overlaps the others' table building.
TEST(FftConcurrencyMixed, AllBackendsRunAtOnce) {
  precompute_references();
#if defined(FNET_HAS_FFTW)
  const fnet::fft::Fftw fftw;
#endif
  const fnet::fft::Builtin builtin;
  const fnet::fft::DftMatrix dft;
  const auto failures = run_threads([&](unsigned t) {
    switch (t % 3) {
#if defined(FNET_HAS_FFTW)
      case 0:
        return transform_all(fftw, t);
#endif
      case 1:
        return transform_all(builtin, t);
      default:
        return transform_all(dft, t);
    }
  });
  for (unsigned t = 0; t < thread_count; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
}

// Copies of one Builtin used from several threads at once, on lengths shared by all threads and lengths of
// their own, so that plans (Bluestein ones, which need power-of-two sub-plans in float and double, included)
// are built concurrently in the shared cache: every result matches the reference.
TEST(BuiltinThreads, ConcurrentCallsOnSharedPlansAreCorrect) {
  using fnet::fft::Builtin;
  const auto lengths = [](unsigned thread) { return std::vector<std::size_t>{60, 127, 256 + 4 * thread}; };
  for (unsigned t = 0; t < thread_count; ++t)
    for (const std::size_t n : lengths(t)) fnet_test::reference(n);
  const Builtin shared;
  const auto failures = run_threads([&](unsigned t) {
    const Builtin mine = shared;  // shares shared's cache
    std::string found;
    for (int round = 0; round < 3; ++round)
      for (const std::size_t n : lengths(t)) {
        const auto& ref = fnet_test::reference(n);
        expect_ok<Builtin, float>(
            fnet_test::checked_transform<float>(mine, ref, Direction::forward,
                                                fnet_test::interleaved_layout(n, ref.rows, false), true),
            n, "float forward columns in place", found);
        expect_ok<Builtin, double>(fnet_test::checked_forward_real<double>(mine, ref, false), n,
                                   "double forward real", found);
      }
    return found;
  });
  for (unsigned t = 0; t < thread_count; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
}

}  // namespace
