// Must not compile: a mixer without name(); the encoder layer names the missing member.
#define FNET_TEST_DROP_NAME
#include "mixer_base.hpp"
