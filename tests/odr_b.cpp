#include <odr_headers_reverse.hpp>

#include <gtest/gtest.h>

#include <string>

std::string odr_version_a();

TEST(Odr, BothTranslationUnitsLinkAndAgree) {
  EXPECT_EQ(odr_version_a(), std::string(fnet::version));
}
