// Two translation units include every public header (the list is generated from include/fnet at configure
// time); a function or variable defined in a header without `inline` is then defined twice and the link
// fails. This one includes them in path order, odr_b.cpp in reverse, so two different headers come first.
#include <odr_headers_forward.hpp>

#include <string>

std::string odr_version_a() {
  return fnet::version;
}
