// Must not compile: a type without the backend members is rejected with the contract's message.
#include <fnet/fft/backend.hpp>

struct NotABackend {};

FNET_REQUIRE_FFT_BACKEND(NotABackend, float);
