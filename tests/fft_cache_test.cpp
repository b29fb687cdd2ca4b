// The build-once cache behind every FFT backend's plans and tables: one build per key however many threads
// ask, failed builds forgotten, size/clear, the bound on entries, builders that need other keys.
#include <fnet/fft/detail/build_once_cache.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace build_once_cache_test {

using fnet::fft::detail::BuildOnceCache;

struct Table {
  explicit Table(int v) : value(v) {}
  int value;
};

using Cache = BuildOnceCache<int, Table>;

// A flag threads can wait on, with a generous limit so that a broken cache fails the test instead of
// hanging it.
class Signal {
 public:
  void raise() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      raised_ = true;
    }
    changed_.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60), [this] { return raised_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool raised_ = false;
};

class BuildFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

TEST(BuildOnceCache, ManyThreadsAskingForOneKeyShareOneBuild) {
  constexpr int threads = 8;
  Cache cache;
  std::atomic<int> builds{0};
  std::atomic<int> arrived{0};
  std::vector<std::shared_ptr<const Table>> got(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      arrived.fetch_add(1);
      got[t] = cache.get(7, [&] {
        builds.fetch_add(1);
        // Stay in the build until every thread has at least reached the cache, so the others find it
        // under way (or finished) rather than missing.
        while (arrived.load() < threads) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return std::make_shared<const Table>(49);
      });
    });
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(builds.load(), 1);
  for (int t = 0; t < threads; ++t) {
    ASSERT_NE(got[t], nullptr) << "thread " << t;
    EXPECT_EQ(got[t], got[0]) << "thread " << t << " got a different value";
    EXPECT_EQ(got[t]->value, 49);
  }
  EXPECT_EQ(cache.size(), 1u);
  // A built key is returned as is: the builder is not called.
  const auto again = cache.get(7, [&] {
    builds.fetch_add(1);
    return std::make_shared<const Table>(0);
  });
  EXPECT_EQ(again, got[0]);
  EXPECT_EQ(builds.load(), 1);
}

// Each builder waits until the other has started: that can only happen if different keys build at once.
TEST(BuildOnceCache, DifferentKeysBuildAtTheSameTime) {
  Cache cache;
  Signal first_started, second_started;
  bool first_saw_second = false, second_saw_first = false;
  std::thread first([&] {
    cache.get(1, [&] {
      first_started.raise();
      first_saw_second = second_started.wait();
      return std::make_shared<const Table>(1);
    });
  });
  std::thread second([&] {
    cache.get(2, [&] {
      second_started.raise();
      second_saw_first = first_started.wait();
      return std::make_shared<const Table>(2);
    });
  });
  first.join();
  second.join();
  EXPECT_TRUE(first_saw_second) << "the build of key 2 did not run while key 1 was building";
  EXPECT_TRUE(second_saw_first) << "the build of key 1 did not run while key 2 was building";
  EXPECT_EQ(cache.size(), 2u);
}

TEST(BuildOnceCache, AThrowingBuildIsForgottenAndTheNextRequestBuildsAgain) {
  Cache cache;
  int builds = 0;
  try {
    cache.get(3, [&]() -> std::shared_ptr<const Table> {
      ++builds;
      throw BuildFailed("no table for 3");
    });
    ADD_FAILURE() << "the builder's exception did not reach the caller";
  } catch (const BuildFailed& error) {
    EXPECT_EQ(std::string(error.what()), "no table for 3");
  }
  EXPECT_EQ(cache.size(), 0u);
  const auto table = cache.get(3, [&] {
    ++builds;
    return std::make_shared<const Table>(9);
  });
  EXPECT_EQ(builds, 2);
  EXPECT_EQ(table->value, 9);
  EXPECT_EQ(cache.size(), 1u);

  EXPECT_THROW(cache.get(4, [] { return std::shared_ptr<const Table>(); }), std::logic_error)
      << "a builder returning no value";
  EXPECT_EQ(cache.size(), 1u);
}

// A request that arrives while a build of its key is failing ends with a value of its own build.
TEST(BuildOnceCache, ARequestWaitingOnAFailingBuildBuildsTheKeyItself) {
  Cache cache;
  Signal failing_started;
  std::atomic<int> good_builds{0};
  bool failure_reached_its_caller = false;
  std::thread failing([&] {
    try {
      cache.get(5, [&]() -> std::shared_ptr<const Table> {
        failing_started.raise();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the other request arrive
        throw BuildFailed("first build of 5 fails");
      });
    } catch (const BuildFailed&) {
      failure_reached_its_caller = true;
    }
  });
  ASSERT_TRUE(failing_started.wait());
  const auto table = cache.get(5, [&] {
    good_builds.fetch_add(1);
    return std::make_shared<const Table>(25);
  });
  failing.join();
  EXPECT_TRUE(failure_reached_its_caller);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->value, 25);
  EXPECT_EQ(good_builds.load(), 1);
  EXPECT_EQ(cache.size(), 1u);
}

// Counts live values; its destructor asks the cache for its size, which deadlocks if values die under the
// cache's lock.
struct Tracked {
  Tracked(int v, std::atomic<int>& live, const BuildOnceCache<int, Tracked>& owner)
      : value(v), live_(live), owner_(owner) {
    live_.fetch_add(1);
  }
  ~Tracked() {
    owner_.size();
    live_.fetch_sub(1);
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  int value;

 private:
  std::atomic<int>& live_;
  const BuildOnceCache<int, Tracked>& owner_;
};

TEST(BuildOnceCache, ClearForgetsEveryEntryAndValuesInUseStayAlive) {
  std::atomic<int> live{0};
  BuildOnceCache<int, Tracked> cache;
  const auto make = [&](int v) { return [&, v] { return std::make_shared<const Tracked>(v, live, cache); }; };
  auto held = cache.get(1, make(10));
  cache.get(2, make(20));
  cache.get(3, make(30));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.keys(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(live.load(), 3);

  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(cache.keys().empty());
  EXPECT_EQ(live.load(), 1) << "values nobody holds are released by clear()";
  EXPECT_EQ(held->value, 10);

  const auto rebuilt = cache.get(1, make(11));
  EXPECT_EQ(rebuilt->value, 11) << "a cleared key is built again";
  EXPECT_NE(rebuilt, held);
  held.reset();
  EXPECT_EQ(live.load(), 1);
  cache.clear();  // before the cache goes: a Tracked must not die inside the cache's destructor
}

TEST(BuildOnceCache, PastItsCapacityTheEarliestBuiltEntryIsDroppedAndStaysValidForItsHolders) {
  std::atomic<int> live{0};
  BuildOnceCache<int, Tracked> cache(3);
  EXPECT_EQ(cache.capacity(), 3u);
  int builds = 0;
  const auto make = [&](int v) {
    return [&, v] {
      ++builds;
      return std::make_shared<const Tracked>(v, live, cache);
    };
  };
  const auto held = cache.get(1, make(10));
  cache.get(2, make(20));
  cache.get(3, make(30));
  cache.get(2, make(-1));  // a lookup, not a build: does not make key 2 younger
  EXPECT_EQ(builds, 3);

  cache.get(4, make(40));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.keys(), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(held->value, 10) << "the dropped value is still usable by whoever holds it";
  EXPECT_EQ(live.load(), 4);

  cache.get(5, make(50));  // drops 2, which nobody holds
  EXPECT_EQ(cache.keys(), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(live.load(), 4);

  const auto again = cache.get(1, make(11));  // rebuilt after its drop, dropping 3
  EXPECT_EQ(builds, 6);
  EXPECT_EQ(again->value, 11);
  EXPECT_EQ(cache.keys(), (std::vector<int>{1, 4, 5}));
  cache.clear();  // before the cache goes: a Tracked must not die inside the cache's destructor

  EXPECT_THROW(Cache(0), std::invalid_argument);
}

TEST(BuildOnceCache, ABuilderMayRequestOtherKeysButNotItsOwn) {
  Cache cache;
  int builds = 0;
  const auto leaf = [&] {
    ++builds;
    return std::make_shared<const Table>(4);
  };
  const auto composite = cache.get(16, [&] {
    ++builds;
    const auto part = cache.get(4, leaf);
    return std::make_shared<const Table>(part->value * part->value);
  });
  EXPECT_EQ(composite->value, 16);
  EXPECT_EQ(builds, 2);
  EXPECT_EQ(cache.keys(), (std::vector<int>{4, 16}));

  // Many threads asking for the composite and its part at once: each is built once.
  Cache shared;
  std::atomic<int> shared_builds{0};
  std::vector<std::thread> workers;
  std::vector<int> values(8, 0);
  for (int t = 0; t < 8; ++t)
    workers.emplace_back([&, t] {
      const auto part_builder = [&] {
        shared_builds.fetch_add(1);
        return std::make_shared<const Table>(3);
      };
      if (t % 2 == 0) {
        values[t] = shared
                        .get(9,
                             [&] {
                               shared_builds.fetch_add(1);
                               const auto part = shared.get(3, part_builder);
                               return std::make_shared<const Table>(part->value * part->value);
                             })
                        ->value;
      } else {
        values[t] = shared.get(3, part_builder)->value;
      }
    });
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(shared_builds.load(), 2);
  for (int t = 0; t < 8; ++t) EXPECT_EQ(values[t], t % 2 == 0 ? 9 : 3) << "thread " << t;

  // A request for the key being built, from its own builder, would wait for itself forever: it is refused,
  // and the failed build leaves nothing behind.
  EXPECT_THROW(cache.get(32,
                         [&] {
                           cache.get(32, leaf);
                           return std::make_shared<const Table>(0);
                         }),
               std::logic_error);
  EXPECT_EQ(cache.keys(), (std::vector<int>{4, 16}));
}

}  // namespace build_once_cache_test
