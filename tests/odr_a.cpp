// Two translation units include every public header and instantiate the same templates; a
// missing `inline` or a non-template definition in a header makes this fail to link.
#include <fnet/fnet.hpp>

#include <string>

std::string odr_version_a() { return fnet::version; }
