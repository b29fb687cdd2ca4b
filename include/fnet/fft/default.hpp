// fnet::fft::Default: the FFT backend used when none is named (FFTW when the build has it, else Builtin).
#pragma once

#if defined(FNET_HAS_FFTW)
#include <fnet/fft/fftw.hpp>
#else
#include <fnet/fft/builtin.hpp>
#endif

namespace fnet::fft {

/**
 * The backend every template of the library takes when none is given: fnet::fft::Fftw if the library was
 * configured with FFTW (the CMake target then defines FNET_HAS_FFTW), otherwise the dependency-free
 * fnet::fft::Builtin.
 *
 *   fnet::fft::Default fft;
 *   fft.transform(batch, fnet::fft::Direction::forward);
 */
#if defined(FNET_HAS_FFTW)
using Default = Fftw;
#else
using Default = Builtin;
#endif

}  // namespace fnet::fft
