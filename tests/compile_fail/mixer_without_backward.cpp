// Must not compile: a mixer without backward(); the encoder layer names the missing member.
#define FNET_TEST_DROP_BACKWARD
#include "mixer_base.hpp"
