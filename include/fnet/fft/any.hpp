// fnet::fft::AnyBackend: one of the shipped FFT backends, chosen at run time (from a flag, a configuration).
#pragma once

#include <fnet/fft/backend.hpp>
#include <fnet/fft/builtin.hpp>
#include <fnet/fft/dft_matrix.hpp>
#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#endif

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace fnet::fft {

/**
 * A backend that holds one of fnet::fft::Fftw (when the build has it), Builtin and DftMatrix and forwards
 * every call to it. A model over AnyBackend is compiled once and runs any of them; a model over one named
 * backend (FNetModel<float, fnet::fft::Builtin>) is compiled once per backend it names. Each call costs one
 * dispatch on top of the chosen backend's own work: transforms come in batches of rows, so it does not show.
 *
 *   auto backend = fnet::fft::AnyBackend::named("builtin");     // "fftw", "builtin", "dft", or "" (Default)
 *   fnet::FNetModel<float, fnet::fft::AnyBackend> model(config, {}, backend);
 *   std::puts(model.encoder.layer(0).mixing.backend().selected());   // "builtin"
 */
class AnyBackend : public detail::TransformEntryPoints<AnyBackend> {
 public:
  static constexpr const char* name = "any";

  /// fnet::fft::Default's backend.
  AnyBackend() = default;
  AnyBackend(Builtin backend) : backend_(std::move(backend)) {}    // NOLINT: any backend is an AnyBackend
  AnyBackend(DftMatrix backend) : backend_(std::move(backend)) {}  // NOLINT
#if defined(FNET_HAS_FFTW)
  AnyBackend(Fftw backend) : backend_(std::move(backend)) {}  // NOLINT
#endif

  /// The backend a name gives: "fftw", "builtin", "dft", or "" for fnet::fft::Default's. Throws
  /// std::invalid_argument naming the value for any other name, and for "fftw" in a build without FFTW.
  static AnyBackend named(std::string_view backend) {
    if (backend.empty()) return AnyBackend();
    if (backend == Builtin::name) return Builtin();
    if (backend == DftMatrix::name) return DftMatrix();
#if defined(FNET_HAS_FFTW)
    if (backend == Fftw::name) return Fftw();
#else
    if (backend == "fftw")
      throw std::invalid_argument(
          "fnet::fft::AnyBackend: this build has no FFTW (configure with FNET_WITH_FFTW)");
#endif
    throw std::invalid_argument("fnet::fft::AnyBackend: unknown backend \"" + std::string(backend) +
                                "\" (expected fftw, builtin or dft)");
  }

  /// The name of the backend it holds ("fftw", "builtin" or "dft").
  const char* selected() const {
    return std::visit([](const auto& backend) { return std::decay_t<decltype(backend)>::name; }, backend_);
  }

  void clear() const {
    std::visit([](const auto& backend) { backend.clear(); }, backend_);
  }
  std::size_t cache_size() const {
    return std::visit([](const auto& backend) { return backend.cache_size(); }, backend_);
  }

 private:
  friend class detail::TransformEntryPoints<AnyBackend>;

  template <class T>
  void run_forward_real(const RealToComplexBatch<T>& batch) const {
    std::visit([&](const auto& backend) { backend.forward_real(batch); }, backend_);
  }
  template <class T>
  void run_inverse_real(const ComplexToRealBatch<T>& batch) const {
    std::visit([&](const auto& backend) { backend.inverse_real(batch); }, backend_);
  }
  template <class T>
  void run_transform(const ComplexBatch<T>& batch, Direction direction) const {
    std::visit([&](const auto& backend) { backend.transform(batch, direction); }, backend_);
  }

#if defined(FNET_HAS_FFTW)
  std::variant<Fftw, Builtin, DftMatrix> backend_;  // Fftw first: fnet::fft::Default
#else
  std::variant<Builtin, DftMatrix> backend_;  // Builtin first: fnet::fft::Default
#endif
};

}  // namespace fnet::fft
