// Must not compile: a mixer without its Scalar type; the encoder layer names the missing member.
#define FNET_TEST_DROP_SCALAR
#include "mixer_base.hpp"
