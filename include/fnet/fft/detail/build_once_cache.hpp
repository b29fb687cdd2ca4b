// BuildOnceCache: immutable values built once per key on first request, shared, with a bound on the count.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fnet::fft::detail {

/// The default bound on the entries of a BuildOnceCache: more lengths (or layouts) than any realistic set of
/// models uses, and still a bound on a caller that sends ever new ones.
inline constexpr std::size_t default_cache_capacity = 256;

/**
 * A map from keys to immutable values (FFT plans, DFT tables) that builds each value once, on the first
 * request for its key, and hands out shared_ptrs to it.
 *
 *   BuildOnceCache<std::size_t, Table> tables;
 *   std::shared_ptr<const Table> t = tables.get(512, [] { return std::make_shared<const Table>(512); });
 *
 * - A request for a built key takes one short lock. A request for a missing key builds it outside every
 *   lock of the cache; concurrent requests for that key wait for the one build, requests for other keys go
 *   on (and may build) meanwhile.
 * - A builder may request other keys of the same cache (a plan made of smaller plans). The keys a builder
 *   requests must not lead back to its own key: on the same thread that is refused with std::logic_error,
 *   across threads it would deadlock.
 * - A builder that throws leaves nothing behind: its exception reaches its caller, and a later request (or
 *   one already waiting) builds the key again.
 * - At most capacity() entries are held. Making room for a new key drops the entry whose build finished
 *   first; an entry still being built is never dropped, so the bound can only be passed while more than
 *   capacity() builds run at once. A dropped value lives on in the shared_ptrs already handed out.
 * - Values are released outside the cache's lock (clear() and drops), so their destructors may take locks
 *   of their own.
 */
template <class Key, class Value, class Compare = std::less<Key>>
class BuildOnceCache {
 public:
  explicit BuildOnceCache(std::size_t capacity = default_cache_capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("fnet::fft: cache capacity must be >= 1, got 0");
  }

  BuildOnceCache(const BuildOnceCache&) = delete;
  BuildOnceCache& operator=(const BuildOnceCache&) = delete;

  /// The value for `key`, from `build()` (returning anything convertible to std::shared_ptr<const Value>,
  /// never null) if it is not cached yet.
  template <class Builder>
  std::shared_ptr<const Value> get(const Key& key, Builder&& build) {
    std::shared_ptr<Entry> mine;
    std::vector<std::shared_ptr<Entry>> dropped;  // released after the lock, declared before it
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!mine) {
        const auto found = entries_.find(key);
        if (found == entries_.end()) {
          make_room(dropped);
          mine = std::make_shared<Entry>();
          mine->builder = std::this_thread::get_id();
          entries_.emplace(key, mine);
          break;
        }
        const std::shared_ptr<Entry> entry = found->second;
        if (entry->value) return entry->value;
        if (entry->builder == std::this_thread::get_id())
          throw std::logic_error("fnet::fft: a cache builder requested its own key");
        finished_.wait(lock, [&entry] { return entry->value || entry->failed; });
        if (entry->value) return entry->value;
        // That build threw and its entry is gone: look again, and build if nobody else has started.
      }
    }
    dropped.clear();

    std::shared_ptr<const Value> value;
    try {
      value = build();
      if (!value) throw std::logic_error("fnet::fft: a cache builder returned no value");
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        mine->failed = true;
        const auto found = entries_.find(key);
        if (found != entries_.end() && found->second == mine) entries_.erase(found);
      }
      finished_.notify_all();
      throw;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      mine->value = value;
      // After a clear() during the build the entry is no longer ours to file; its waiters still get it.
      const auto found = entries_.find(key);
      if (found != entries_.end() && found->second == mine) {
        mine->order = next_order_++;
        built_order_.emplace(mine->order, key);
      }
    }
    finished_.notify_all();
    return value;
  }

  /// Entries built or being built.
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

  std::size_t capacity() const { return capacity_; }

  /// Keys of the entries built or being built, in key order.
  std::vector<Key> keys() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Key> result;
    result.reserve(entries_.size());
    for (const auto& entry : entries_) result.push_back(entry.first);
    return result;
  }

  /// Forgets every entry. Values in use stay alive through their shared_ptrs; builds under way finish and
  /// go to their callers (and waiters) without being cached.
  void clear() {
    Entries forgotten;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      forgotten.swap(entries_);
      built_order_.clear();
    }
    // The values die here, outside the lock.
  }

 private:
  struct Entry {
    std::shared_ptr<const Value> value;  // set once the build succeeded
    bool failed = false;                 // set when the build threw
    std::thread::id builder;             // the thread building it, while value is null
    std::uint64_t order = 0;             // rank in built_order_, once built
  };
  using Entries = std::map<Key, std::shared_ptr<Entry>, Compare>;

  // Called under the lock before a new entry goes in: drops the earliest built entries until there is room.
  void make_room(std::vector<std::shared_ptr<Entry>>& dropped) {
    while (entries_.size() >= capacity_ && !built_order_.empty()) {
      const auto oldest = built_order_.begin();
      const auto found = entries_.find(oldest->second);
      if (found != entries_.end()) {
        dropped.push_back(std::move(found->second));
        entries_.erase(found);
      }
      built_order_.erase(oldest);
    }
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable finished_;  // notified whenever a build ends, well or badly
  Entries entries_;
  std::map<std::uint64_t, Key> built_order_;  // built entries in entries_, by when their build finished
  std::uint64_t next_order_ = 0;
};

}  // namespace fnet::fft::detail
