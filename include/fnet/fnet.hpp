// Umbrella header: everything a user of the library needs.
#pragma once

#include <fnet/version.hpp>
#include <fnet/fft/backend.hpp>
