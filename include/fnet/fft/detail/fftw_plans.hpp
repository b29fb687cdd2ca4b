// Internals of fnet::fft::Fftw: the float/double FFTW API table, the process-wide planner lock, one owned
// plan and the plan cache.
#pragma once

#include <fftw3.h>

#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>

#include <fnet/fft/detail/scalar_caches.hpp>

namespace fnet::fft::detail {

// FFTW's planner (plan creation and destruction, wisdom) works on global state and is not thread-safe, for
// fftw3 and fftw3f alike; only the execute functions are. Every planner call in the library takes this lock.
// Code elsewhere in the process that plans with FFTW directly does not, and must not plan concurrently with
// us.
inline std::mutex& fftw_planner_mutex() {
  static std::mutex planner;
  return planner;
}

template <class T>
struct FftwApi;

template <>
struct FftwApi<double> {
  using Plan = fftw_plan;
  using Complex = fftw_complex;
  static constexpr const char* precision = "double";
  static Plan plan_dft(const fftw_iodim64& dim, const fftw_iodim64& batch, Complex* in, Complex* out,
                       int sign, unsigned flags) {
    return fftw_plan_guru64_dft(1, &dim, 1, &batch, in, out, sign, flags);
  }
  static Plan plan_r2c(const fftw_iodim64& dim, const fftw_iodim64& batch, double* in, Complex* out,
                       unsigned flags) {
    return fftw_plan_guru64_dft_r2c(1, &dim, 1, &batch, in, out, flags);
  }
  static Plan plan_c2r(const fftw_iodim64& dim, const fftw_iodim64& batch, Complex* in, double* out,
                       unsigned flags) {
    return fftw_plan_guru64_dft_c2r(1, &dim, 1, &batch, in, out, flags);
  }
  static void execute_dft(Plan p, Complex* in, Complex* out) { fftw_execute_dft(p, in, out); }
  static void execute_r2c(Plan p, double* in, Complex* out) { fftw_execute_dft_r2c(p, in, out); }
  static void execute_c2r(Plan p, Complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
  static void* allocate(std::size_t bytes) { return fftw_malloc(bytes); }
  static void release(void* p) { fftw_free(p); }
  static int alignment_of(const double* p) { return fftw_alignment_of(const_cast<double*>(p)); }
  static void export_wisdom(void (*write_char)(char, void*), void* sink) {
    fftw_export_wisdom(write_char, sink);
  }
  static bool import_wisdom(const char* text) { return fftw_import_wisdom_from_string(text) != 0; }
};

template <>
struct FftwApi<float> {
  using Plan = fftwf_plan;
  using Complex = fftwf_complex;
  static constexpr const char* precision = "float";
  static Plan plan_dft(const fftwf_iodim64& dim, const fftwf_iodim64& batch, Complex* in, Complex* out,
                       int sign, unsigned flags) {
    return fftwf_plan_guru64_dft(1, &dim, 1, &batch, in, out, sign, flags);
  }
  static Plan plan_r2c(const fftwf_iodim64& dim, const fftwf_iodim64& batch, float* in, Complex* out,
                       unsigned flags) {
    return fftwf_plan_guru64_dft_r2c(1, &dim, 1, &batch, in, out, flags);
  }
  static Plan plan_c2r(const fftwf_iodim64& dim, const fftwf_iodim64& batch, Complex* in, float* out,
                       unsigned flags) {
    return fftwf_plan_guru64_dft_c2r(1, &dim, 1, &batch, in, out, flags);
  }
  static void execute_dft(Plan p, Complex* in, Complex* out) { fftwf_execute_dft(p, in, out); }
  static void execute_r2c(Plan p, float* in, Complex* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void execute_c2r(Plan p, Complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
  static void* allocate(std::size_t bytes) { return fftwf_malloc(bytes); }
  static void release(void* p) { fftwf_free(p); }
  static int alignment_of(const float* p) { return fftwf_alignment_of(const_cast<float*>(p)); }
  static void export_wisdom(void (*write_char)(char, void*), void* sink) {
    fftwf_export_wisdom(write_char, sink);
  }
  static bool import_wisdom(const char* text) { return fftwf_import_wisdom_from_string(text) != 0; }
};

enum class FftwKind { real_to_complex, complex_to_real, complex_forward, complex_inverse };

// Everything a plan depends on. A plan executes correctly on any arrays with the same key: same shape and
// steps, same in-place-ness, and (unless planned FFTW_UNALIGNED) the same SIMD alignment as the planning
// arrays.
struct FftwPlanKey {
  FftwKind kind = FftwKind::complex_forward;
  unsigned rigour_flags = FFTW_ESTIMATE;
  std::ptrdiff_t length = 0;
  std::ptrdiff_t count = 0;
  std::ptrdiff_t input_stride = 1;    // between elements of one transform, in input elements
  std::ptrdiff_t input_distance = 0;  // between transforms; 0 when count == 1
  std::ptrdiff_t output_stride = 1;
  std::ptrdiff_t output_distance = 0;
  bool in_place = false;
  bool simd_aligned = false;  // both arrays at FFTW's SIMD alignment

  auto tied() const {
    return std::tie(kind, rigour_flags, length, count, input_stride, input_distance, output_stride,
                    output_distance, in_place, simd_aligned);
  }
  bool operator<(const FftwPlanKey& other) const { return tied() < other.tied(); }
};

inline std::string fftw_describe(const FftwPlanKey& key) {
  static const char* const kinds[] = {"real-to-complex", "complex-to-real", "forward complex",
                                      "inverse complex"};
  return std::string(kinds[static_cast<int>(key.kind)]) + " transform of length " +
         std::to_string(key.length) + " x count " + std::to_string(key.count) + " (strides " +
         std::to_string(key.input_stride) + "/" + std::to_string(key.output_stride) + ", distances " +
         std::to_string(key.input_distance) + "/" + std::to_string(key.output_distance) + ")";
}

// One FFTW plan, owned; created and destroyed under the planner lock. `input` and `output` are the arrays
// of the call that needs the plan (the same pointer when in place).
template <class T>
class FftwPlan {
  using Api = FftwApi<T>;
  using Complex = typename Api::Complex;

 public:
  FftwPlan(const FftwPlanKey& key, void* input, void* output) {
    const bool real_input = key.kind == FftwKind::real_to_complex;
    const bool real_output = key.kind == FftwKind::complex_to_real;
    const std::ptrdiff_t bins = key.length / 2 + 1;
    const std::ptrdiff_t input_length = key.kind == FftwKind::complex_to_real ? bins : key.length;
    const std::ptrdiff_t output_length = key.kind == FftwKind::real_to_complex ? bins : key.length;
    const std::size_t input_bytes = span(input_length, key.count, key.input_stride, key.input_distance) *
                                    (real_input ? sizeof(T) : sizeof(Complex));
    const std::size_t output_bytes = span(output_length, key.count, key.output_stride, key.output_distance) *
                                     (real_output ? sizeof(T) : sizeof(Complex));

    unsigned flags = key.rigour_flags;
    if (!key.simd_aligned) flags |= FFTW_UNALIGNED;
    // Out of place the caller's input is const: FFTW's c2r would otherwise use it as scratch.
    if (!key.in_place) flags |= FFTW_PRESERVE_INPUT;
    const fftw_iodim64 dim{key.length, key.input_stride, key.output_stride};
    const fftw_iodim64 batch{key.count, key.input_distance, key.output_distance};

    // FFTW_ESTIMATE plans neither read nor write their arrays (FFTW manual, "Planner Flags"; this holds for
    // every kind, c2r with FFTW_PRESERVE_INPUT included), so they are made on the caller's arrays: no scratch
    // of the transform's size. FFTW_MEASURE and up run transforms on the arrays they are given, so they get
    // zeroed scratch (zeros: garbage could hold denormals and skew the timings), never the caller's data.
    const bool on_callers_arrays = key.rigour_flags == FFTW_ESTIMATE;
    // FFTW guarantees thread safety for execution only, so fftw_malloc/fftw_free stay under the lock too.
    std::lock_guard<std::mutex> planner(fftw_planner_mutex());
    ScratchArray input_scratch(on_callers_arrays ? 0 : input_bytes);
    ScratchArray output_scratch(on_callers_arrays || key.in_place ? 0 : output_bytes);
    void* input_data = on_callers_arrays ? input : input_scratch.data;
    void* output_data = on_callers_arrays ? output : key.in_place ? input_scratch.data : output_scratch.data;
    switch (key.kind) {
      case FftwKind::real_to_complex:
        plan_ =
            Api::plan_r2c(dim, batch, static_cast<T*>(input_data), static_cast<Complex*>(output_data), flags);
        break;
      case FftwKind::complex_to_real:
        plan_ =
            Api::plan_c2r(dim, batch, static_cast<Complex*>(input_data), static_cast<T*>(output_data), flags);
        break;
      case FftwKind::complex_forward:
      case FftwKind::complex_inverse:
        plan_ =
            Api::plan_dft(dim, batch, static_cast<Complex*>(input_data), static_cast<Complex*>(output_data),
                          key.kind == FftwKind::complex_forward ? FFTW_FORWARD : FFTW_BACKWARD, flags);
        break;
    }
    if (plan_ == nullptr)
      throw std::runtime_error(std::string("fnet::fft::Fftw: FFTW (") + Api::precision +
                               ") could not plan a " + fftw_describe(key));
  }

  FftwPlan(const FftwPlan&) = delete;
  FftwPlan& operator=(const FftwPlan&) = delete;

  ~FftwPlan() {
    std::lock_guard<std::mutex> planner(fftw_planner_mutex());
    Api::destroy(plan_);
  }

  typename Api::Plan get() const { return plan_; }

 private:
  struct ScratchArray {
    explicit ScratchArray(std::size_t bytes) {
      if (bytes == 0) return;
      data = Api::allocate(bytes);
      if (data == nullptr) throw std::bad_alloc();
      std::memset(data, 0, bytes);
    }
    ~ScratchArray() {
      if (data != nullptr) Api::release(data);
    }
    ScratchArray(const ScratchArray&) = delete;
    ScratchArray& operator=(const ScratchArray&) = delete;
    void* data = nullptr;
  };

  static std::size_t span(std::ptrdiff_t length, std::ptrdiff_t count, std::ptrdiff_t stride,
                          std::ptrdiff_t distance) {
    return static_cast<std::size_t>((length - 1) * stride + (count - 1) * distance + 1);
  }

  typename Api::Plan plan_ = nullptr;
};

// The plans of one Fftw object and its copies, float and double, each made once by the first call that needs
// it; other layouts stay available to other threads meanwhile.
using FftwPlanCache = ScalarCaches<FftwPlanKey, FftwPlan>;

}  // namespace fnet::fft::detail
