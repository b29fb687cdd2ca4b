// Internals of fnet::fft::DftMatrix: exactly reduced unit roots, the cos/sin tables of one length, their
// cache.
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

namespace fnet::detail {

// cos and sin of 2π m/n (0 <= m < n). The angle is folded into [0, π/4] with integer arithmetic on 8m/(8n)
// before any rounding, so symmetric entries come out exactly equal and sin(π), cos(π/2) exactly zero; the one
// rounding left is that of a long double sin/cos near the origin.
inline std::pair<long double, long double> dft_unit_root(std::uint64_t m, std::uint64_t n) {
  constexpr long double two_pi = 6.283185307179586476925286766559005768L;
  const std::uint64_t full_turn = 8 * n;
  std::uint64_t eighths = 8 * (m % n);
  bool negate_sin = false, negate_cos = false, swap = false;
  if (2 * eighths > full_turn) {  // θ in (π, 2π): θ -> 2π - θ
    eighths = full_turn - eighths;
    negate_sin = true;
  }
  if (4 * eighths > full_turn) {  // θ in (π/2, π]: θ -> π - θ
    eighths = full_turn / 2 - eighths;
    negate_cos = true;
  }
  if (8 * eighths > full_turn) {  // θ in (π/4, π/2]: θ -> π/2 - θ
    eighths = full_turn / 4 - eighths;
    swap = true;
  }
  const long double angle = two_pi * static_cast<long double>(eighths) / static_cast<long double>(full_turn);
  long double c = std::cos(angle), s = std::sin(angle);
  if (swap) std::swap(c, s);
  return {negate_cos ? -c : c, negate_sin ? -s : s};
}

// C[j][k] = cos(2π jk/n), S[j][k] = sin(2π jk/n) for j < n and the n/2+1 non-redundant k, rounded once into
// T. The other columns follow from C[j][n-k] = C[j][k], S[j][n-k] = -S[j][k]; and C, S being symmetric, these
// columns, transposed, are also the first n/2+1 rows.
template <class T>
struct DftTables {
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  static std::size_t bytes_for(std::size_t n) { return 2 * n * (n / 2 + 1) * sizeof(T); }

  explicit DftTables(std::size_t n) : cos(n, n / 2 + 1), sin(n, n / 2 + 1) {
    const std::size_t bins = n / 2 + 1;
    std::vector<T> cos_of(n), sin_of(n);
    for (std::size_t m = 0; m < n; ++m) {
      const auto [c, s] = dft_unit_root(m, n);
      cos_of[m] = static_cast<T>(c);
      sin_of[m] = static_cast<T>(s);
    }
    // Row n-j is row j with the angles negated: the same cos, the opposite sin.
    for (std::size_t j = 0; 2 * j <= n; ++j) {
      T* cos_row = cos.data() + j * bins;
      T* sin_row = sin.data() + j * bins;
      std::size_t m = 0;  // (j*k) mod n, stepped without overflow
      for (std::size_t k = 0; k < bins; ++k) {
        cos_row[k] = cos_of[m];
        sin_row[k] = sin_of[m];
        m += j;
        if (m >= n) m -= n;
      }
      if (j == 0 || 2 * j == n) continue;
      T* mirror_cos = cos.data() + (n - j) * bins;
      T* mirror_sin = sin.data() + (n - j) * bins;
      for (std::size_t k = 0; k < bins; ++k) {
        mirror_cos[k] = cos_row[k];
        mirror_sin[k] = -sin_row[k];
      }
    }
  }

  Matrix cos;
  Matrix sin;
};

// Tables shared by all copies of one DftMatrix object; each length is built once, by the first thread asking.
class DftTableCache {
 public:
  template <class T>
  std::shared_ptr<const DftTables<T>> tables(std::size_t n) {
    std::shared_ptr<Slot<T>> slot;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& entry = slots<T>()[n];
      if (!entry) entry = std::make_shared<Slot<T>>();
      slot = entry;
    }
    std::lock_guard<std::mutex> building(slot->mutex);
    if (!slot->tables) {
      try {
        slot->tables = std::make_shared<const DftTables<T>>(n);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = slots<T>().find(n);
        if (found != slots<T>().end() && found->second == slot) slots<T>().erase(found);
        throw;
      }
    }
    return slot->tables;
  }

  // Bytes held by the tables of every length built so far, float and double.
  std::size_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t total = 0;
    for (const auto& entry : float_slots_) total += DftTables<float>::bytes_for(entry.first);
    for (const auto& entry : double_slots_) total += DftTables<double>::bytes_for(entry.first);
    return total;
  }

  void clear() {
    decltype(float_slots_) floats;
    decltype(double_slots_) doubles;
    std::lock_guard<std::mutex> lock(mutex_);
    floats.swap(float_slots_);
    doubles.swap(double_slots_);
  }

 private:
  template <class T>
  struct Slot {
    std::mutex mutex;  // held while the tables are built, so they are never built twice
    std::shared_ptr<const DftTables<T>> tables;
  };

  template <class T>
  std::map<std::size_t, std::shared_ptr<Slot<T>>>& slots() {
    if constexpr (std::is_same_v<T, float>)
      return float_slots_;
    else
      return double_slots_;
  }

  std::mutex mutex_;
  std::map<std::size_t, std::shared_ptr<Slot<float>>> float_slots_;
  std::map<std::size_t, std::shared_ptr<Slot<double>>> double_slots_;
};

}  // namespace fnet::detail
