// Must not compile: a mixer without the parameter walk (visit_parameters); the encoder layer names the
// missing member.
#define FNET_TEST_DROP_WALK
#include "mixer_base.hpp"
