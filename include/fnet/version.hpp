// Library version.
#pragma once

#define FNET_VERSION_MAJOR 0
#define FNET_VERSION_MINOR 1
#define FNET_VERSION_PATCH 0

namespace fnet {
inline constexpr const char* version = "0.1.0";
}  // namespace fnet
