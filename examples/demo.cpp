#include <fnet/fnet.hpp>

#include <cstdio>

int main() {
  std::printf("fnet %s\n", fnet::version);
  return 0;
}
