// fnet::fft::Fftw: the FFT backend over FFTW 3 (fftw3 for double, fftw3f for float), with its plan cache and
// wisdom.
#pragma once

#include <fnet/fft/backend.hpp>
#include <fnet/fft/detail/fftw_plans.hpp>

#include <complex>
#include <cstddef>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

namespace fnet::fft {

/**
 * FFT backend over FFTW 3. Meets the contract of <fnet/fft/backend.hpp> for float and double.
 *
 *   fnet::fft::Fftw fftw;                                   // FFTW_ESTIMATE plans
 *   fnet::fft::Fftw tuned{fnet::fft::Fftw::Rigour::measure};  // slower first call, faster after
 *   std::vector<float> x(768);
 *   std::vector<std::complex<float>> spectrum(768 / 2 + 1);
 *   fftw.forward_real(fnet::fft::RealToComplexBatch<float>{768, 1, x.data(), 768, spectrum.data(), 385});
 *
 * Plans are cached per layout (length, count, strides, distances, kind, direction, in place or not, SIMD
 * alignment of the arrays, rigour) and shared by all copies of the object; cache_size() counts them. The
 * cache keeps at most 256 plans per precision: a new layout past that drops the plan made earliest (calls
 * running on it finish normally). A plan is made once, under one
 * process-wide lock because FFTW's planner is not thread-safe: with Rigour::estimate on the caller's arrays
 * (FFTW_ESTIMATE never reads or writes them, so planning costs no memory of the transform's size), above it
 * on zeroed scratch arrays (FFTW_MEASURE and up run transforms on them, and must never touch user data). It
 * then runs through FFTW's new-array execute functions on any buffers of that layout, from any number of
 * threads at once. Arrays that are not at FFTW's SIMD alignment get FFTW_UNALIGNED plans.
 *
 * Other code in the same process that creates FFTW plans directly (not through this class) must not do so
 * while this class plans: FFTW offers no lock of its own.
 */
class Fftw : public detail::TransformEntryPoints<Fftw> {
 public:
  /// How hard FFTW searches for a fast plan: FFTW_ESTIMATE, FFTW_MEASURE, FFTW_PATIENT, FFTW_EXHAUSTIVE.
  /// Anything above estimate times candidate plans on the first call of each layout (seconds for patient).
  enum class Rigour { estimate, measure, patient, exhaustive };

  static constexpr const char* name = "fftw";

  Fftw() : Fftw(Rigour::estimate) {}
  explicit Fftw(Rigour rigour) : cache_(std::make_shared<detail::FftwPlanCache>()), rigour_(rigour) {}

  Rigour rigour() const { return rigour_; }

  /// Drops every cached plan of this object and its copies. Not concurrently with a transform.
  void clear() const { cache_->clear(); }

  /// Plans cached (float and double together), for this object and its copies.
  std::size_t cache_size() const { return cache_->size(); }

  /// FFTW's accumulated wisdom for one precision (T = float or double), in FFTW's text format. Wisdom is
  /// process-wide, gathered by every plan made with rigour measure or above.
  template <class T>
  static std::string export_wisdom() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "FFTW wisdom exists for float and double");
    std::string text;
    std::lock_guard<std::mutex> planner(detail::fftw_planner_mutex());
    detail::FftwApi<T>::export_wisdom(
        [](char c, void* sink) { static_cast<std::string*>(sink)->push_back(c); }, &text);
    return text;
  }

  /// Adds wisdom exported earlier (by export_wisdom or FFTW's own tools) to FFTW's store, so plans made after
  /// this call (not those already cached) find fast algorithms without measuring. Throws
  /// std::invalid_argument if the text is not FFTW wisdom for precision T.
  template <class T>
  static void import_wisdom(const std::string& wisdom) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "FFTW wisdom exists for float and double");
    bool accepted = false;
    {
      std::lock_guard<std::mutex> planner(detail::fftw_planner_mutex());
      accepted = detail::FftwApi<T>::import_wisdom(wisdom.c_str());
    }
    if (!accepted)
      throw std::invalid_argument(
          std::string("fnet::fft::Fftw::import_wisdom: the text is not FFTW wisdom for ") +
          detail::FftwApi<T>::precision + " (starts with \"" + wisdom.substr(0, 40) + "\")");
  }

  /// Writes export_wisdom<T>() to a file (created or replaced). Throws std::runtime_error naming the file.
  template <class T>
  static void save_wisdom(const std::string& path) {
    const std::string text = export_wisdom<T>();
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file)
      throw std::runtime_error("fnet::fft::Fftw::save_wisdom: cannot open '" + path + "' for writing");
    file << text;
    file.flush();
    if (!file) throw std::runtime_error("fnet::fft::Fftw::save_wisdom: cannot write '" + path + "'");
  }

  /// Imports the wisdom held in a file written by save_wisdom<T> (or fftw-wisdom). Throws std::runtime_error
  /// naming the file if it cannot be read, std::invalid_argument naming it if it holds no wisdom for T.
  template <class T>
  static void load_wisdom(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file)
      throw std::runtime_error("fnet::fft::Fftw::load_wisdom: cannot open '" + path + "' for reading");
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw std::runtime_error("fnet::fft::Fftw::load_wisdom: cannot read '" + path + "'");
    try {
      import_wisdom<T>(text.str());
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("fnet::fft::Fftw::load_wisdom: '" + path + "' holds no FFTW wisdom for " +
                                  detail::FftwApi<T>::precision);
    }
  }

 private:
  friend class detail::TransformEntryPoints<Fftw>;

  unsigned rigour_flags() const {
    switch (rigour_) {
      case Rigour::measure:
        return FFTW_MEASURE;
      case Rigour::patient:
        return FFTW_PATIENT;
      case Rigour::exhaustive:
        return FFTW_EXHAUSTIVE;
      case Rigour::estimate:
        break;
    }
    return FFTW_ESTIMATE;
  }

  template <class T>
  static bool simd_aligned(const void* input, const void* output) {
    return detail::FftwApi<T>::alignment_of(static_cast<const T*>(input)) == 0 &&
           detail::FftwApi<T>::alignment_of(static_cast<const T*>(output)) == 0;
  }

  // Distances of a single transform are meaningless (and unchecked): zero them so such calls share one plan.
  template <class Batch>
  detail::FftwPlanKey key_for(detail::FftwKind kind, const Batch& batch, std::ptrdiff_t input_distance,
                              std::ptrdiff_t output_distance) const {
    detail::FftwPlanKey key;
    key.kind = kind;
    key.rigour_flags = rigour_flags();
    key.length = static_cast<std::ptrdiff_t>(batch.length);
    key.count = static_cast<std::ptrdiff_t>(batch.count);
    key.input_distance = batch.count > 1 ? input_distance : 0;
    key.output_distance = batch.count > 1 ? output_distance : 0;
    return key;
  }

  // `input` and `output` are the requesting call's arrays; only FFTW_ESTIMATE planning uses them, and never
  // reads or writes them.
  template <class T>
  std::shared_ptr<const detail::FftwPlan<T>> plan_for(const detail::FftwPlanKey& key, void* input,
                                                      void* output) const {
    return cache_->of<T>().get(
        key, [&] { return std::make_shared<const detail::FftwPlan<T>>(key, input, output); });
  }

  // The plan of a real batch (either direction), for its input and output as FFTW types. FFTW's signatures
  // are not const-correct: neither an out-of-place r2c plan nor a c2r plan made with FFTW_PRESERVE_INPUT
  // writes its input.
  template <class In, class Out>
  auto real_plan(detail::FftwKind kind, const RealBatch<In, Out>& batch) const {
    using T = std::conditional_t<std::is_same_v<Out, std::complex<In>>, In, Out>;
    using Api = detail::FftwApi<T>;
    auto key = key_for(kind, batch, batch.input_distance, batch.output_distance);
    key.simd_aligned = simd_aligned<T>(batch.input, batch.output);
    auto* input = reinterpret_cast<std::conditional_t<std::is_same_v<In, T>, T, typename Api::Complex>*>(
        const_cast<In*>(batch.input));
    auto* output =
        reinterpret_cast<std::conditional_t<std::is_same_v<Out, T>, T, typename Api::Complex>*>(batch.output);
    return std::make_tuple(plan_for<T>(key, input, output), input, output);
  }

  template <class T>
  void run_forward_real(const RealToComplexBatch<T>& batch) const {
    check(batch);
    const auto [plan, input, output] = real_plan(detail::FftwKind::real_to_complex, batch);
    detail::FftwApi<T>::execute_r2c(plan->get(), input, output);
  }

  template <class T>
  void run_inverse_real(const ComplexToRealBatch<T>& batch) const {
    check(batch);
    const auto [plan, input, output] = real_plan(detail::FftwKind::complex_to_real, batch);
    detail::FftwApi<T>::execute_c2r(plan->get(), input, output);
  }

  template <class T>
  void run_transform(const ComplexBatch<T>& batch, Direction direction) const {
    check(batch);
    using Api = detail::FftwApi<T>;
    auto key = key_for(direction == Direction::forward ? detail::FftwKind::complex_forward
                                                       : detail::FftwKind::complex_inverse,
                       batch, batch.distance, batch.distance);
    key.input_stride = batch.stride;
    key.output_stride = batch.stride;
    key.in_place = batch.input == batch.output;
    key.simd_aligned = simd_aligned<T>(batch.input, batch.output);
    // An out-of-place complex plan never writes its input (FFTW_PRESERVE_INPUT).
    auto* input = reinterpret_cast<typename Api::Complex*>(const_cast<std::complex<T>*>(batch.input));
    const auto plan = plan_for<T>(key, input, batch.output);
    Api::execute_dft(plan->get(), input, reinterpret_cast<typename Api::Complex*>(batch.output));
  }

  std::shared_ptr<detail::FftwPlanCache> cache_;
  Rigour rigour_;
};

}  // namespace fnet::fft
