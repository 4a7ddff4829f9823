#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "guardarena/guardarena.hpp"
#include "options/options.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

bool parse(const char* text, Options& o, std::string& error) {
  char buf[512];
  bool ok = guardarena::parse_options(text, o, buf, sizeof buf);
  error = buf;
  return ok;
}

TEST(OptionsParserTest, DefaultsMatchTheTable) {
  Options o;
  EXPECT_EQ(o.mode, Mode::kFull);
  EXPECT_EQ(o.backend, Backend::kAuto);
  EXPECT_EQ(o.on_exhaustion, Exhaustion::kFallback);
  EXPECT_FALSE(o.protect_below);
  EXPECT_EQ(o.alignment, 16u);
  EXPECT_EQ(o.sample_rate, 1u);
}

TEST(OptionsParserTest, ParsesColonSeparatedPairsWithSizes) {
  Options o;
  std::string err;
  ASSERT_TRUE(parse("protect_below=1:backend=mprotect:quarantine_bytes=1M", o, err)) << err;
  EXPECT_TRUE(o.protect_below);
  EXPECT_EQ(o.backend, Backend::kMprotect);
  EXPECT_EQ(o.quarantine_bytes, 1u << 20);
}

TEST(OptionsParserTest, AcceptsCommasWhitespaceAndAllSizeSuffixes) {
  Options o;
  std::string err;
  ASSERT_TRUE(parse(" mode = fast , reserve_size=2G,depot_size=64k:quarantine_bytes=1T ", o, err))
      << err;
  EXPECT_EQ(o.mode, Mode::kFast);
  EXPECT_EQ(o.reserve_size, 2ull << 30);
  EXPECT_EQ(o.depot_size, 64u << 10);
  EXPECT_EQ(o.quarantine_bytes, 1ull << 40);
}

TEST(OptionsParserTest, BudgetTakesASizeAutoOrZero) {
  Options o;
  EXPECT_EQ(o.max_guarded_memory, kAutoBudget);
  std::string err;
  ASSERT_TRUE(parse("max_guarded_memory=32M", o, err)) << err;
  EXPECT_EQ(o.max_guarded_memory, 32u << 20);
  ASSERT_TRUE(parse("max_guarded_memory=0", o, err)) << err;
  EXPECT_EQ(o.max_guarded_memory, 0u);
  ASSERT_TRUE(parse("max_guarded_memory=auto", o, err)) << err;
  EXPECT_EQ(o.max_guarded_memory, kAutoBudget);
  EXPECT_FALSE(parse("max_guarded_memory=half", o, err));
  EXPECT_NE(err.find("option 'max_guarded_memory'"), std::string::npos) << err;
  EXPECT_NE(err.find("size|auto|0"), std::string::npos) << err;
  // auto's stand-in value is not a size a user can write.
  EXPECT_FALSE(parse("max_guarded_memory=18446744073709551615", o, err));
  EXPECT_EQ(guardarena::parse_options("max_guarded_memory=1G").get("max_guarded_memory"), "1G");
  EXPECT_EQ(guardarena::parse_options("").get("max_guarded_memory"), "auto");
}

TEST(OptionsParserTest, TextOptionsKeepTheirValue) {
  Options o;
  std::string err;
  ASSERT_TRUE(parse("log_path=/tmp/ga-report", o, err)) << err;
  EXPECT_STREQ(o.log_path.c_str(), "/tmp/ga-report");
}

TEST(OptionsParserTest, UnknownKeyIsNamedInTheError) {
  Options o;
  std::string err;
  EXPECT_FALSE(parse("mode=full:bogus_key=3", o, err));
  EXPECT_NE(err.find("'bogus_key'"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown option"), std::string::npos) << err;
}

TEST(OptionsParserTest, BadEnumValueListsTheAcceptedValues) {
  Options o;
  std::string err;
  EXPECT_FALSE(parse("backend=fancy", o, err));
  EXPECT_NE(err.find("'backend'"), std::string::npos) << err;
  EXPECT_NE(err.find("auto|guard|mprotect"), std::string::npos) << err;
  EXPECT_NE(err.find("'fancy'"), std::string::npos) << err;
}

TEST(OptionsParserTest, BadNumbersAreRejected) {
  Options o;
  std::string err;
  EXPECT_FALSE(parse("quarantine_slots=12x", o, err));
  EXPECT_FALSE(parse("quarantine_bytes=99999999999999999999", o, err));
  EXPECT_FALSE(parse("quarantine_bytes=20000000T", o, err));  // overflows 64 bits
  EXPECT_FALSE(parse("protect_below=maybe", o, err));
  EXPECT_FALSE(parse("mode", o, err));
  EXPECT_NE(err.find("name=value"), std::string::npos) << err;
  EXPECT_FALSE(parse("sample_rate=", o, err));
}

TEST(OptionsParserTest, CrossOptionRulesAreChecked) {
  Options o;
  std::string err;
  EXPECT_FALSE(parse("alignment=24", o, err));
  EXPECT_NE(err.find("power of two"), std::string::npos) << err;
  Options o2;
  EXPECT_FALSE(parse("sample_rate=0", o2, err));
  Options o3;
  EXPECT_FALSE(parse("min_size=100:max_size=10", o3, err));
}

TEST(OptionsParserTest, EmptyStringKeepsDefaults) {
  Options o;
  std::string err;
  EXPECT_TRUE(parse("", o, err));
  EXPECT_TRUE(parse(nullptr, o, err));
  EXPECT_EQ(o.mode, Mode::kFull);
}

TEST(OptionsParserTest, CppWrapperThrowsInvalidArgumentNamingTheKey) {
  try {
    (void)guardarena::parse_options(std::string_view("quarantine_slots=lots"));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("quarantine_slots"), std::string::npos);
  }
}

TEST(OptionsDocTest, HelpAndMarkdownListEveryOptionWithItsDefault) {
  static char buf[32768];
  RawWriter w(buf, sizeof buf - 1);
  write_options_markdown(w);
  std::string md(buf, w.size());
  for (std::size_t i = 0; i < kOptionCount; ++i) {
    EXPECT_NE(md.find(std::string("`") + option_table()[i].name + "`"), std::string::npos)
        << option_table()[i].name;
  }
  EXPECT_NE(md.find("| `quarantine_bytes` | `256M` |"), std::string::npos) << md;
  RawWriter h(buf, sizeof buf - 1);
  write_options_help(h);
  std::string help(buf, h.size());
  EXPECT_NE(help.find("backend=auto"), std::string::npos) << help;
}

}  // namespace
}  // namespace guardarena
