// Internals of fnet::fft::DftMatrix: the cos/sin tables of one length and their cache.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <vector>

#include <fnet/fft/detail/scalar_caches.hpp>
#include <fnet/fft/detail/unit_root.hpp>

namespace fnet::fft::detail {

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
      const auto [c, s] = unit_root(m, n);
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

// The tables of one DftMatrix object and its copies, float and double, each length built once by the first
// call that needs it.
using DftTableCache = ScalarCaches<std::size_t, DftTables>;

}  // namespace fnet::fft::detail
