// The persistent worker pool behind fnet's intra-op threads, and parallel_for over fixed chunks.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace fnet::detail {

// A job lives on its caller's stack; the pool only links it into a list, so running one allocates nothing.
struct PoolJob {
  void (*invoke)(void* body, std::size_t chunk, int slot) = nullptr;
  void* body = nullptr;
  std::size_t chunk_count = 0;
  std::atomic<std::size_t> next_chunk{0};
  std::atomic<bool> failed{false};
  // Guarded by the pool's mutex.
  int open_helper_slots = 0;
  int helpers_joined = 0;
  int helpers_running = 0;
  std::exception_ptr error;
  PoolJob* next_job = nullptr;
};

// Several callers may run jobs at once; workers help whichever job still has open helper slots.
// A caller always works on its own job too, so a job completes even when every worker is busy elsewhere,
// and a job started from inside another job cannot deadlock.
class ThreadPool {
 public:
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    work_available_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  // Calls body(chunk, slot) for every chunk in [0, chunk_count), using at most max_threads threads
  // (the caller included). slot < max_threads identifies the participant, so a body can use per-slot scratch;
  // two chunks never run with the same slot at once. Rethrows the first exception a body threw.
  template <class Body>
  void run(std::size_t chunk_count, int max_threads, Body&& body) {
    const int participants = static_cast<int>(
        std::min<std::size_t>(chunk_count, static_cast<std::size_t>(std::max(max_threads, 1))));
    if (participants <= 1) {
      for (std::size_t chunk = 0; chunk < chunk_count; ++chunk) body(chunk, 0);
      return;
    }
    using BodyType = std::remove_reference_t<Body>;
    PoolJob job;
    job.invoke = [](void* b, std::size_t chunk, int slot) { (*static_cast<BodyType*>(b))(chunk, slot); };
    job.body = const_cast<void*>(static_cast<const void*>(&body));
    job.chunk_count = chunk_count;
    job.open_helper_slots = participants - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grow_workers(static_cast<std::size_t>(participants - 1));
      job.next_job = jobs_;
      jobs_ = &job;
    }
    work_available_.notify_all();
    work_on(job, 0);
    std::unique_lock<std::mutex> lock(mutex_);
    unlink(job);
    job_finished_.wait(lock, [&] { return job.helpers_running == 0; });
    if (job.error) std::rethrow_exception(job.error);
  }

  std::size_t worker_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return workers_.size();
  }

 private:
  static constexpr std::size_t kMaxWorkers = 255;

  // Requires mutex_. Workers are only ever added, up to the largest number any caller asked for.
  void grow_workers(std::size_t wanted) {
    wanted = std::min(wanted, kMaxWorkers);
    while (workers_.size() < wanted) workers_.emplace_back([this] { worker_loop(); });
  }

  // Requires mutex_.
  void unlink(PoolJob& job) {
    for (PoolJob** link = &jobs_; *link != nullptr; link = &(*link)->next_job) {
      if (*link == &job) {
        *link = job.next_job;
        return;
      }
    }
  }

  void work_on(PoolJob& job, int slot) {
    for (;;) {
      const std::size_t chunk = job.next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (chunk >= job.chunk_count || job.failed.load(std::memory_order_relaxed)) return;
      try {
        job.invoke(job.body, chunk, slot);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!job.error) job.error = std::current_exception();
        job.failed.store(true, std::memory_order_relaxed);
      }
    }
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_available_.wait(lock, [&] { return stopping_ || jobs_ != nullptr; });
      if (stopping_) return;
      PoolJob& job = *jobs_;
      const int slot = 1 + job.helpers_joined++;
      ++job.helpers_running;
      if (--job.open_helper_slots == 0) unlink(job);
      lock.unlock();
      work_on(job, slot);
      lock.lock();
      if (--job.helpers_running == 0) job_finished_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::condition_variable job_finished_;
  std::vector<std::thread> workers_;
  PoolJob* jobs_ = nullptr;  // jobs that still have open helper slots
  bool stopping_ = false;
};

inline ThreadPool& shared_thread_pool() {
  static ThreadPool pool;
  return pool;
}

// Runs body(chunk, slot) over [0, chunk_count) on up to max_threads threads. Callers choose chunks from the
// problem's shape alone, so which thread runs a chunk never changes a result.
template <class Body>
void parallel_for(std::size_t chunk_count, int max_threads, Body&& body) {
  if (max_threads <= 1 || chunk_count <= 1) {
    for (std::size_t chunk = 0; chunk < chunk_count; ++chunk) body(chunk, 0);
    return;
  }
  shared_thread_pool().run(chunk_count, max_threads, body);
}

}  // namespace fnet::detail
