// Dropout as torch.nn.Dropout in training, with masks from a counter-based generator (Philox4x32-10): whether
// an element is kept is a pure function of (seed, step, site, element), so a mask is never stored.
#pragma once

#include <fnet/core/detail/parallel.hpp>
#include <fnet/core/tensor.hpp>
#include <fnet/core/threads.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fnet {

namespace detail {

// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw ("Parallel random numbers: as
// easy as 1, 2, 3", SC 2011): ten rounds that each multiply two of the four 32-bit counter words by fixed odd
// constants, swap the halves of the products and mix in a key that moves by a Weyl sequence. For a fixed key
// it is a bijection of the 128-bit counter; its outputs over consecutive or structured counters pass
// TestU01's BigCrush. Checked against the published known-answer vectors in the tests.
inline std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> counter,
                                                  std::array<std::uint32_t, 2> key) {
  constexpr std::uint64_t kMultiplier0 = 0xD2511F53u, kMultiplier1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    const std::uint64_t product0 = kMultiplier0 * counter[0];
    const std::uint64_t product1 = kMultiplier1 * counter[2];
    counter = {static_cast<std::uint32_t>(product1 >> 32) ^ counter[1] ^ key[0],
               static_cast<std::uint32_t>(product1),
               static_cast<std::uint32_t>(product0 >> 32) ^ counter[3] ^ key[1],
               static_cast<std::uint32_t>(product0)};
  }
  return counter;
}

// Elements of one tensor that a mask can address: four a counter, and 32 bits of the counter for the element.
inline constexpr std::uint64_t kDropoutMaxElements = std::uint64_t{1} << 34;

// The random words of elements [4 * group, 4 * group + 4) of tensor `site` at `step` under `seed`: the
// counter holds (group, site, step) verbatim and the key is the seed.
inline std::array<std::uint32_t, 4> dropout_words(std::uint64_t seed, std::uint64_t step, std::uint32_t site,
                                                  std::uint64_t group) {
  return philox4x32_10({static_cast<std::uint32_t>(group), site, static_cast<std::uint32_t>(step),
                        static_cast<std::uint32_t>(step >> 32)},
                       {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
}

// The words of kDropoutBatch consecutive groups at once, group by group in element order (words[4 * k + lane]
// is word `lane` of group first_group + k): the same numbers as dropout_words, computed with the groups in
// separate lanes so that the compiler turns the rounds into vector instructions.
inline constexpr std::size_t kDropoutBatch = 16;

inline void dropout_words_batch(std::uint64_t seed, std::uint64_t step, std::uint32_t site,
                                std::uint64_t first_group, std::uint32_t (&words)[4 * kDropoutBatch]) {
  constexpr std::uint64_t kMultiplier0 = 0xD2511F53u, kMultiplier1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0[kDropoutBatch], c1[kDropoutBatch], c2[kDropoutBatch], c3[kDropoutBatch];
  for (std::size_t k = 0; k < kDropoutBatch; ++k) {
    c0[k] = static_cast<std::uint32_t>(first_group + k);
    c1[k] = site;
    c2[k] = static_cast<std::uint32_t>(step);
    c3[k] = static_cast<std::uint32_t>(step >> 32);
  }
  std::uint32_t key0 = static_cast<std::uint32_t>(seed), key1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
// Kept as a loop: GCC would otherwise unroll it completely and then no longer vectorise it.
#pragma GCC unroll 1
    for (std::size_t k = 0; k < kDropoutBatch; ++k) {
      const std::uint64_t product0 = std::uint64_t{c0[k]} * kMultiplier0;
      const std::uint64_t product1 = std::uint64_t{c2[k]} * kMultiplier1;
      const std::uint32_t next0 = static_cast<std::uint32_t>(product1 >> 32) ^ c1[k] ^ key0;
      const std::uint32_t next2 = static_cast<std::uint32_t>(product0 >> 32) ^ c3[k] ^ key1;
      c0[k] = next0;
      c1[k] = static_cast<std::uint32_t>(product1);
      c2[k] = next2;
      c3[k] = static_cast<std::uint32_t>(product0);
    }
    key0 += kWeyl0;  // the key of the next round (the last bump is unused)
    key1 += kWeyl1;
  }
  for (std::size_t k = 0; k < kDropoutBatch; ++k) {
    words[4 * k] = c0[k];
    words[4 * k + 1] = c1[k];
    words[4 * k + 2] = c2[k];
    words[4 * k + 3] = c3[k];
  }
}

// Elements per chunk of a whole-tensor pass: a multiple of a batch's elements, so no batch straddles two
// chunks.
inline constexpr std::size_t kDropoutChunk = std::size_t{1} << 14;
static_assert(kDropoutChunk % (4 * kDropoutBatch) == 0);

}  // namespace detail

/// Dropout as torch.nn.Dropout in training mode: every element is zeroed with probability p and the others
/// are scaled by 1 / (1 - p). As PyTorch, it multiplies by the mask (0 or 1 / (1 - p)), so a NaN or infinite
/// input gives NaN even where it is dropped. p == 0 is an exact no-op (the input's bits, copied when out is
/// not x).
///
/// The mask is a pure function of (seed, step, site, element index): nothing is stored between the forward
/// and the backward pass, which recomputes it, and every thread count gives the same mask. `site` names the
/// tensor (one number per dropout location of the model), `step` the forward pass (a counter that never
/// repeats within a run, e.g. the micro-batch number), the element index counts the tensor's elements in
/// row-major order.
///
/// Construction: element i of (step, site) is kept when word i mod 4 of Philox4x32-10 with key = seed and
/// counter = (i / 4, site, step mod 2^32, step / 2^32) is >= round(p * 2^32), so the drop probability is p to
/// within 2^-33. Independence: under one seed, distinct (step, site, i / 4) are distinct counters, Philox is
/// a bijection of the counter, and each element reads its own word; so no two elements of any steps and sites
/// share a random word, and masks of different steps, sites and seeds are different outputs of a generator
/// that passes BigCrush. A tensor holds at most 2^34 elements (the part of the counter given to i / 4).
///
///     fnet::Dropout dropout(0.1, /*seed=*/42);
///     dropout.forward(h.data(), h.data(), h.size(), step, /*site=*/3);     // training forward, in place
///     ...
///     dropout.backward(dh.data(), dh.data(), dh.size(), step, /*site=*/3);  // the same mask, recomputed
class Dropout {
 public:
  /// Throws std::invalid_argument unless 0 <= p < 1.
  explicit Dropout(double p, std::uint64_t seed = 0) : p_(checked_probability(p)), seed_(seed) {
    threshold_ = static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
    scale_ = 1.0 / (1.0 - p);
  }

  double p() const noexcept { return p_; }
  std::uint64_t seed() const noexcept { return seed_; }
  /// The factor of a kept element, 1 / (1 - p).
  double scale() const noexcept { return scale_; }

  /// Whether element `index` of tensor `site` at `step` is kept (always, when p == 0).
  bool keeps(std::uint64_t step, std::uint32_t site, std::uint64_t index) const {
    if (p_ == 0) return true;
    check_range("fnet::Dropout::keeps", index, 1);
    return detail::dropout_words(seed_, step, site, index >> 2)[index & 3] >= threshold_;
  }

  /// out[i] = x[i] * mask(first_index + i) for i < count, on the calling thread: the piece a row-block kernel
  /// applies to its own rows (first_index = index of x[0] in the whole tensor). out may be x.
  template <class Scalar>
  void apply(const Scalar* x, Scalar* out, std::size_t count, std::uint64_t first_index, std::uint64_t step,
             std::uint32_t site) const {
    constexpr const char* owner = "fnet::Dropout::apply";
    check_buffers(owner, x, out, count);
    check_range(owner, first_index, count);
    apply_unchecked(x, out, count, first_index, step, site);
  }

  /// The training forward over a whole tensor of `count` elements: out = x * mask, on fnet::num_threads()
  /// threads. out may be x (in place) and must not overlap it otherwise. With first_index, x is the part of a
  /// larger tensor that starts at that element (a shard of a batch): its mask is that part of the larger
  /// tensor's.
  template <class Scalar>
  void forward(const Scalar* x, Scalar* out, std::size_t count, std::uint64_t step, std::uint32_t site,
               std::uint64_t first_index = 0) const {
    run("fnet::Dropout::forward", x, out, count, step, site, first_index);
  }

  /// The backward pass: dx = dy * mask, the mask recomputed from (step, site, first_index). dx may be dy.
  template <class Scalar>
  void backward(const Scalar* dy, Scalar* dx, std::size_t count, std::uint64_t step, std::uint32_t site,
                std::uint64_t first_index = 0) const {
    run("fnet::Dropout::backward", dy, dx, count, step, site, first_index);
  }

  /// In place over a (batch, seq, hidden) tensor.
  template <class Scalar>
  void forward(Tensor3<Scalar>& x, std::uint64_t step, std::uint32_t site) const {
    forward(x.data(), x.data(), static_cast<std::size_t>(x.size()), step, site);
  }
  template <class Scalar>
  void backward(Tensor3<Scalar>& dy, std::uint64_t step, std::uint32_t site) const {
    backward(dy.data(), dy.data(), static_cast<std::size_t>(dy.size()), step, site);
  }

 private:
  static double checked_probability(double p) {
    if (!(p >= 0 && p < 1)) {
      std::ostringstream message;
      message << "fnet::Dropout: p must be in [0, 1), got " << p;
      throw std::invalid_argument(message.str());
    }
    return p;
  }

  static void check_range(const char* owner, std::uint64_t first_index, std::uint64_t count) {
    if (first_index > detail::kDropoutMaxElements || count > detail::kDropoutMaxElements - first_index)
      throw std::invalid_argument(std::string(owner) + ": " + std::to_string(count) +
                                  " elements from index " + std::to_string(first_index) +
                                  " exceed the 2^34 elements a mask can address");
  }

  template <class Scalar>
  static void check_buffers(const char* owner, const Scalar* x, const Scalar* out, std::size_t count) {
    if (count == 0) return;
    if (x == nullptr || out == nullptr)
      throw std::invalid_argument(std::string(owner) + ": " + (x == nullptr ? "input" : "output") +
                                  " has a null data pointer for " + std::to_string(count) + " elements");
    const auto a = reinterpret_cast<std::uintptr_t>(x), b = reinterpret_cast<std::uintptr_t>(out);
    const std::uintptr_t bytes = count * sizeof(Scalar);
    if (a != b && a < b + bytes && b < a + bytes)
      throw std::invalid_argument(
          std::string(owner) + ": output partly overlaps input (they must be the same memory or disjoint)");
  }

  template <class Scalar>
  void run(const char* owner, const Scalar* x, Scalar* out, std::size_t count, std::uint64_t step,
           std::uint32_t site, std::uint64_t first_index) const {
    check_buffers(owner, x, out, count);
    check_range(owner, first_index, count);
    detail::parallel_for(
        detail::ceil_div(count, detail::kDropoutChunk), num_threads(), [&](std::size_t chunk, int) {
          const std::size_t first = chunk * detail::kDropoutChunk;
          apply_unchecked(x + first, out + first, std::min(count - first, detail::kDropoutChunk),
                          first_index + first, step, site);
        });
  }

  template <class Scalar>
  void apply_unchecked(const Scalar* x, Scalar* out, std::size_t count, std::uint64_t first_index,
                       std::uint64_t step, std::uint32_t site) const {
    if (p_ == 0) {
      if (out != x) std::copy_n(x, count, out);
      return;
    }
    const Scalar kept = static_cast<Scalar>(scale_);
    constexpr std::uint64_t kBatchElements = 4 * detail::kDropoutBatch;
    std::uint32_t words[kBatchElements];
    std::size_t i = 0;
    while (i < count) {
      const std::uint64_t index = first_index + i;
      const std::uint64_t batch_start = index / kBatchElements * kBatchElements;
      detail::dropout_words_batch(seed_, step, site, batch_start / 4, words);
      const std::size_t offset = static_cast<std::size_t>(index - batch_start);
      const std::size_t n = std::min<std::size_t>(count - i, kBatchElements - offset);
      for (std::size_t k = 0; k < n; ++k)
        out[i + k] = x[i + k] * (words[offset + k] >= threshold_ ? kept : Scalar(0));
      i += n;
    }
  }

  double p_;
  std::uint64_t seed_;
  std::uint64_t threshold_ = 0;
  double scale_ = 1;
};

}  // namespace fnet
