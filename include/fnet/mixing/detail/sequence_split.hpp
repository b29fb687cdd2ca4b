// SequenceSplit: the rows x columns (four-step) split of the mixing's transform down the sequence, with its
// twiddles, built once per length and shared.
#pragma once

#include <fnet/fft/detail/build_once_cache.hpp>
#include <fnet/fft/detail/unit_root.hpp>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace fnet::detail {

// A length L = outer * inner transform as `outer` transforms of length `inner` (over j2, for inputs
// j = j1 + outer*j2), a twiddle exp(-2 pi i j1 k2 / L) on each result, then `inner` transforms of length
// `outer` (over j1), whose outputs are k = k2 + inner*k1. Each short transform touches few enough rows to run
// in cache however long L is. These are the twiddles, built once per length.
template <class Scalar>
struct SequenceSplit {
  std::size_t outer = 1;
  std::size_t inner = 1;
  std::vector<std::complex<Scalar>> twiddles;  // [j1 * inner + k2], correctly rounded

  // The largest divisor of `length` not above its square root: 1 when length has none (a prime).
  static std::size_t inner_length(std::size_t length) {
    std::size_t inner = 1;
    for (std::size_t d = 2; d * d <= length; ++d)
      if (length % d == 0) inner = d;
    return inner;
  }

  static std::shared_ptr<const SequenceSplit> make(std::size_t length) {
    auto split = std::make_shared<SequenceSplit>();
    split->inner = inner_length(length);
    split->outer = length / split->inner;
    split->twiddles.reserve(length);
    for (std::size_t j1 = 0; j1 < split->outer; ++j1)
      for (std::size_t k2 = 0; k2 < split->inner; ++k2) {
        const auto root = fft::detail::unit_root(static_cast<std::uint64_t>(j1 * k2), length);
        split->twiddles.emplace_back(static_cast<Scalar>(root.first), static_cast<Scalar>(-root.second));
      }
    return split;
  }
};

template <class Scalar>
using SequenceSplitCache = fft::detail::BuildOnceCache<std::size_t, SequenceSplit<Scalar>>;

}  // namespace fnet::detail
