// Must compile: the mixer of the compile-fail tests with every member (the control for them).
#include "mixer_base.hpp"

static_assert(fnet::is_mixer_v<CompleteMixer>);
static_assert(!fnet::is_mixer_v<int>);
