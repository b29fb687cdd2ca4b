// Batched execution of the built-in FFT: blocks of transforms gathered into lanes, run, and scattered back.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <fnet/fft/backend.hpp>
#include <fnet/fft/detail/builtin_kernels.hpp>
#include <fnet/fft/detail/builtin_plan.hpp>

namespace fnet::fft::detail {

/// Transforms per full block: one 64-byte vector of real parts (16 floats, 8 doubles).
template <class T>
inline constexpr std::size_t builtin_lanes = 64 / sizeof(T);

/// Per-thread scratch that only grows, so that repeated transforms of lengths already seen allocate
/// nothing. Returned storage is 64-byte aligned and holds at least `values` scalars.
template <class T>
T* builtin_scratch(std::size_t values) {
  constexpr std::size_t slack = 64 / sizeof(T);
  thread_local std::vector<T> buffer;
  if (buffer.size() < values + slack) buffer.resize(values + slack);
  const auto misalignment = reinterpret_cast<std::uintptr_t>(buffer.data()) % 64;
  return buffer.data() + (misalignment == 0 ? 0 : (64 - misalignment) / sizeof(T));
}

inline std::ptrdiff_t builtin_offset(std::size_t index, std::ptrdiff_t step) {
  return static_cast<std::ptrdiff_t>(index) * step;
}

// ---- moving data between rows and lanes ------------------------------------------------------------

// Both directions go through a small tile (W rows x 8 complex values) so that reads and writes are each
// contiguous runs that stay in L1; the naive loops write or read one scalar per 2W-value element stride.
inline constexpr std::size_t builtin_tile_pairs = 8;

/// Lane l of elements [0, pairs) of `data` gets the (re, sign*im) pairs at row_base + l*row_step.
template <class T, std::size_t W>
void builtin_rows_to_lanes(const T* row_base, std::ptrdiff_t row_step, std::size_t pairs, T sign, T* data) {
  constexpr std::size_t E = 2 * W;
  constexpr std::size_t P = builtin_tile_pairs;
  std::size_t j0 = 0;
  for (; j0 + P <= pairs; j0 += P) {
    T tile[W][2 * P];
    for (std::size_t l = 0; l < W; ++l) {
      const T* row = row_base + builtin_offset(l, row_step) + 2 * j0;
      for (std::size_t t = 0; t < 2 * P; ++t) tile[l][t] = row[t];
    }
    for (std::size_t jj = 0; jj < P; ++jj) {
      T* d = data + (j0 + jj) * E;
      for (std::size_t l = 0; l < W; ++l) d[l] = tile[l][2 * jj];
      for (std::size_t l = 0; l < W; ++l) d[W + l] = sign * tile[l][2 * jj + 1];
    }
  }
  for (; j0 < pairs; ++j0) {
    T* d = data + j0 * E;
    for (std::size_t l = 0; l < W; ++l) {
      const T* row = row_base + builtin_offset(l, row_step) + 2 * j0;
      d[l] = row[0];
      d[W + l] = sign * row[1];
    }
  }
}

/// The reverse of builtin_rows_to_lanes.
template <class T, std::size_t W>
void builtin_lanes_to_rows(const T* data, std::size_t pairs, T sign, T* row_base, std::ptrdiff_t row_step) {
  constexpr std::size_t E = 2 * W;
  constexpr std::size_t P = builtin_tile_pairs;
  std::size_t j0 = 0;
  for (; j0 + P <= pairs; j0 += P) {
    T tile[W][2 * P];
    for (std::size_t jj = 0; jj < P; ++jj) {
      const T* s = data + (j0 + jj) * E;
      for (std::size_t l = 0; l < W; ++l) {
        tile[l][2 * jj] = s[l];
        tile[l][2 * jj + 1] = sign * s[W + l];
      }
    }
    for (std::size_t l = 0; l < W; ++l) {
      T* row = row_base + builtin_offset(l, row_step) + 2 * j0;
      for (std::size_t t = 0; t < 2 * P; ++t) row[t] = tile[l][t];
    }
  }
  for (; j0 < pairs; ++j0) {
    const T* s = data + j0 * E;
    for (std::size_t l = 0; l < W; ++l) {
      T* row = row_base + builtin_offset(l, row_step) + 2 * j0;
      row[0] = s[l];
      row[1] = sign * s[W + l];
    }
  }
}

// ---- complex batches -------------------------------------------------------------------------------

template <class T, std::size_t W, bool Conjugate>
void builtin_complex_block(const BuiltinComplexPlan<T>& plan, const ComplexBatch<T>& batch, std::size_t first,
                           T* scratch) {
  constexpr std::size_t E = 2 * W;
  const std::size_t n = plan.length;
  T* data = scratch;
  T* work = scratch + (n + 1) * E;
  const T sign = Conjugate ? T(-1) : T(1);
  // Values of element j of transform `first + l` sit at 2*(j*stride + (first + l)*distance).
  const std::ptrdiff_t lane_step = 2 * batch.distance;
  const T* in = reinterpret_cast<const T*>(batch.input) + 2 * builtin_offset(first, batch.distance);
  T* out = reinterpret_cast<T*>(batch.output) + 2 * builtin_offset(first, batch.distance);
  if (batch.stride == 1) {  // transforms are rows
    builtin_rows_to_lanes<T, W>(in, lane_step, n, sign, data);
    const T* result = builtin_run<T, W>(plan, data, work);
    builtin_lanes_to_rows<T, W>(result, n, sign, out, lane_step);
    return;
  }
  for (std::size_t j = 0; j < n; ++j) {
    const T* s = in + 2 * builtin_offset(j, batch.stride);
    T* d = data + j * E;
    if (batch.distance == 1) {  // interleaved columns: the W transforms of a block are adjacent
      for (std::size_t l = 0; l < W; ++l) {
        d[l] = s[2 * l];
        d[W + l] = sign * s[2 * l + 1];
      }
    } else {
      for (std::size_t l = 0; l < W; ++l) {
        d[l] = s[builtin_offset(l, lane_step)];
        d[W + l] = sign * s[builtin_offset(l, lane_step) + 1];
      }
    }
  }
  const T* result = builtin_run<T, W>(plan, data, work);
  for (std::size_t j = 0; j < n; ++j) {
    const T* s = result + j * E;
    T* d = out + 2 * builtin_offset(j, batch.stride);
    if (batch.distance == 1) {
      for (std::size_t l = 0; l < W; ++l) {
        d[2 * l] = s[l];
        d[2 * l + 1] = sign * s[W + l];
      }
    } else {
      for (std::size_t l = 0; l < W; ++l) {
        d[builtin_offset(l, lane_step)] = s[l];
        d[builtin_offset(l, lane_step) + 1] = sign * s[W + l];
      }
    }
  }
}

// Runs `block<W>(first, scratch)` over the batch: full blocks of builtin_lanes transforms, then blocks of a
// quarter of that, then single transforms, so a ragged tail costs little more than its own work.
template <class T, class Block>
void builtin_for_blocks(std::size_t count, std::size_t elements, Block&& block) {
  constexpr std::size_t wide = builtin_lanes<T>;
  constexpr std::size_t narrow = wide / 4;
  std::size_t first = 0;
  if (count - first >= wide) {
    T* scratch = builtin_scratch<T>(elements * 2 * wide);
    for (; count - first >= wide; first += wide)
      block(std::integral_constant<std::size_t, wide>{}, first, scratch);
  }
  if (count - first >= narrow) {
    T* scratch = builtin_scratch<T>(elements * 2 * narrow);
    for (; count - first >= narrow; first += narrow)
      block(std::integral_constant<std::size_t, narrow>{}, first, scratch);
  }
  if (first < count) {
    T* scratch = builtin_scratch<T>(elements * 2);
    for (; first < count; ++first) block(std::integral_constant<std::size_t, 1>{}, first, scratch);
  }
}

template <class T>
void builtin_complex_batch(const BuiltinComplexPlan<T>& plan, const ComplexBatch<T>& batch, bool inverse) {
  const std::size_t elements = plan.length + 1 + plan.work_elements();
  builtin_for_blocks<T>(batch.count, elements, [&](auto lanes, std::size_t first, T* scratch) {
    constexpr std::size_t W = decltype(lanes)::value;
    if (inverse)
      builtin_complex_block<T, W, true>(plan, batch, first, scratch);
    else
      builtin_complex_block<T, W, false>(plan, batch, first, scratch);
  });
}

// ---- real to complex -------------------------------------------------------------------------------

// Turns the half-length transform Z of z_j = x_2j + i*x_2j+1 (h = n/2 elements, room for h+1) into the
// bins X_0..X_h of the real transform: X_k = E_k + w^k O_k with E_k = (Z_k + conj Z_h-k)/2,
// O_k = (Z_k - conj Z_h-k)/2i, w = exp(-2*pi*i/n). Bins k and h-k are computed together, in place.
template <class T, std::size_t W>
void builtin_untangle_forward(T* z, std::size_t h, const T* post) {
  constexpr std::size_t E = 2 * W;
  for (std::size_t l = 0; l < W; ++l) {
    const T zr = z[l], zi = z[W + l];
    z[l] = zr + zi;
    z[W + l] = T(0);
    z[h * E + l] = zr - zi;
    z[h * E + W + l] = T(0);
  }
  for (std::size_t k = 1; k < h - k; ++k) {
    const T wr = post[2 * k], wi = post[2 * k + 1];
    T* a = z + k * E;
    T* b = z + (h - k) * E;
    for (std::size_t l = 0; l < W; ++l) {
      const T ar = a[l], ai = a[W + l], br = b[l], bi = b[W + l];
      const T er = T(0.5) * (ar + br), ei = T(0.5) * (ai - bi);
      const T orr = T(0.5) * (ai + bi), oi = T(0.5) * (br - ar);
      const T pr = wr * orr - wi * oi, pi = wr * oi + wi * orr;
      a[l] = er + pr;
      a[W + l] = ei + pi;
      b[l] = er - pr;
      b[W + l] = pi - ei;
    }
  }
  if (h % 2 == 0 && h > 0) {
    T* a = z + (h / 2) * E;
    for (std::size_t l = 0; l < W; ++l) a[W + l] = -a[W + l];
  }
}

template <class T, std::size_t W>
void builtin_forward_real_block(const BuiltinRealPlan<T>& plan, const RealToComplexBatch<T>& batch,
                                std::size_t first, T* scratch) {
  constexpr std::size_t E = 2 * W;
  const std::size_t n = plan.length;
  const bool even = n % 2 == 0;
  const std::size_t m = plan.complex->length;  // n/2 when even, n when odd
  T* data = scratch;
  T* work = scratch + (m + 1) * E;
  const T* rows = batch.input + builtin_offset(first, batch.input_distance);
  if (even) {
    builtin_rows_to_lanes<T, W>(rows, batch.input_distance, m, T(1), data);
  } else {
    for (std::size_t l = 0; l < W; ++l) {
      const T* row = rows + builtin_offset(l, batch.input_distance);
      for (std::size_t j = 0; j < m; ++j) {
        data[j * E + l] = row[j];
        data[j * E + W + l] = T(0);
      }
    }
  }
  T* z = builtin_run<T, W>(*plan.complex, data, work);
  if (even) builtin_untangle_forward<T, W>(z, m, plan.post_twiddles.data());
  builtin_lanes_to_rows<T, W>(
      z, n / 2 + 1, T(1), reinterpret_cast<T*>(batch.output + builtin_offset(first, batch.output_distance)),
      2 * batch.output_distance);
}

template <class T>
void builtin_forward_real_batch(const BuiltinRealPlan<T>& plan, const RealToComplexBatch<T>& batch) {
  const std::size_t elements = plan.complex->length + 1 + plan.complex->work_elements();
  builtin_for_blocks<T>(batch.count, elements, [&](auto lanes, std::size_t first, T* scratch) {
    builtin_forward_real_block<T, decltype(lanes)::value>(plan, batch, first, scratch);
  });
}

// ---- complex to real -------------------------------------------------------------------------------

// The inverse of builtin_untangle_forward, scaled by 2 so the half-length inverse gives the unnormalised
// length-n result: Z_k = (X_k + conj X_h-k) + i (X_k - conj X_h-k) conj(w^k). Stores conj(Z) so that a
// forward transform followed by conjugation is the inverse. The imaginary parts of X_0 and X_h are
// ignored, as for any Hermitian input.
template <class T, std::size_t W>
void builtin_tangle_inverse(T* x, std::size_t h, const T* post) {
  constexpr std::size_t E = 2 * W;
  for (std::size_t l = 0; l < W; ++l) {
    const T x0 = x[l], xh = x[h * E + l];
    x[l] = x0 + xh;
    x[W + l] = xh - x0;
  }
  for (std::size_t k = 1; k < h - k; ++k) {
    const T wr = post[2 * k], wi = post[2 * k + 1];
    T* a = x + k * E;
    T* b = x + (h - k) * E;
    for (std::size_t l = 0; l < W; ++l) {
      const T ar = a[l], ai = a[W + l], br = b[l], bi = b[W + l];
      const T fr = ar + br, fi = ai - bi;
      const T dr = ar - br, di = ai + bi;
      const T gr = dr * wr + di * wi, gi = di * wr - dr * wi;
      a[l] = fr - gi;
      a[W + l] = -(fi + gr);
      b[l] = fr + gi;
      b[W + l] = fi - gr;
    }
  }
  if (h % 2 == 0 && h > 0) {
    T* a = x + (h / 2) * E;
    for (std::size_t l = 0; l < W; ++l) {
      a[l] = T(2) * a[l];
      a[W + l] = T(2) * a[W + l];
    }
  }
}

template <class T, std::size_t W>
void builtin_inverse_real_block(const BuiltinRealPlan<T>& plan, const ComplexToRealBatch<T>& batch,
                                std::size_t first, T* scratch) {
  constexpr std::size_t E = 2 * W;
  const std::size_t n = plan.length;
  const bool even = n % 2 == 0;
  const std::size_t m = plan.complex->length;
  const std::size_t bins = n / 2 + 1;
  T* data = scratch;
  T* work = scratch + (m + 1) * E;
  const T* rows = reinterpret_cast<const T*>(batch.input + builtin_offset(first, batch.input_distance));
  if (even) {
    builtin_rows_to_lanes<T, W>(rows, 2 * batch.input_distance, bins, T(1), data);
  } else {
    for (std::size_t l = 0; l < W; ++l) {
      const T* row = rows + builtin_offset(l, 2 * batch.input_distance);
      // Hermitian extension, conjugated for the forward-pass inverse: Y_k = conj X_k, Y_n-k = X_k.
      data[l] = row[0];
      data[W + l] = T(0);
      for (std::size_t k = 1; k < bins; ++k) {
        data[k * E + l] = row[2 * k];
        data[k * E + W + l] = -row[2 * k + 1];
        data[(n - k) * E + l] = row[2 * k];
        data[(n - k) * E + W + l] = row[2 * k + 1];
      }
    }
  }
  if (even) builtin_tangle_inverse<T, W>(data, m, plan.post_twiddles.data());
  const T* z = builtin_run<T, W>(*plan.complex, data, work);
  T* out = batch.output + builtin_offset(first, batch.output_distance);
  if (even) {
    builtin_lanes_to_rows<T, W>(z, m, T(-1), out, batch.output_distance);
  } else {
    for (std::size_t l = 0; l < W; ++l) {
      T* row = out + builtin_offset(l, batch.output_distance);
      for (std::size_t j = 0; j < n; ++j) row[j] = z[j * E + l];
    }
  }
}

template <class T>
void builtin_inverse_real_batch(const BuiltinRealPlan<T>& plan, const ComplexToRealBatch<T>& batch) {
  const std::size_t elements = plan.complex->length + 1 + plan.complex->work_elements();
  builtin_for_blocks<T>(batch.count, elements, [&](auto lanes, std::size_t first, T* scratch) {
    builtin_inverse_real_block<T, decltype(lanes)::value>(plan, batch, first, scratch);
  });
}

}  // namespace fnet::fft::detail
