// The checked JSON layer: parsing limits (depth), typed reads with ranges, and messages that stay
// one short line whatever the input holds.
#include "io/json_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace quamba {
namespace {

using ::testing::HasSubstr;

std::string Deep(int n) { return std::string(n, '[') + std::string(n, ']'); }

TEST(JsonUtil, DeepNestingIsAnErrorNotAStackOverflow) {
  // 80,000 levels (160 KB): nlohmann's serializer, copy and comparison recurse per level.
  auto j = ParseJson("{\"a\": " + Deep(80000) + "}", "f.json");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().message(),
            "f.json: expected JSON nested at most 64 levels deep, found deeper nesting at byte 69");
  EXPECT_TRUE(ParseJson(Deep(kMaxJsonDepth), "f.json").ok());
  EXPECT_FALSE(ParseJson(Deep(kMaxJsonDepth + 1), "f.json").ok());
  // Brackets inside strings, escaped quotes included, are text.
  auto s = ParseJson("[\"\\\"" + std::string(1000, '[') + "\"]", "f.json");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ((*s)[0].get<std::string>().size(), 1001u);
}

TEST(JsonUtil, DuplicateKeysAreAnError) {
  EXPECT_EQ(ParseJson("{\"a\": 1, \"b\": {\"a\": 2}, \"a\": 3}", "f.json").status().message(),
            "f.json: key \"a\": expected once per object, found it twice");
  // The same key in different objects is fine.
  EXPECT_TRUE(ParseJson("[{\"a\": 1}, {\"a\": 2, \"b\": {\"a\": 3}}]", "f.json").ok());
}

TEST(JsonUtil, MessagesStayShortWhateverTheInput) {
  const std::string big(100000, 'x');
  // An unterminated 100 KB string: nlohmann's "last read: '...'" would quote all of it.
  auto j = ParseJson("{\"a\": \"" + big, "f.json");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.status().message(), HasSubstr("f.json: expected valid JSON, found"));
  EXPECT_LT(j.status().message().size(), 250u);
  // A number beyond double's range is nlohmann's out_of_range, not a parse_error: still a Status.
  EXPECT_EQ(ParseJson("[1e400]", "f.json").status().message(),
            "f.json: expected valid JSON, found number overflow parsing '1e400'");
  auto k = ParseJson("{\"a\": \"" + big + "\", \"b\": [1, 2]}", "f.json");
  ASSERT_TRUE(k.ok());
  auto o = JsonObject::Of(*k, "f.json", "");
  ASSERT_TRUE(o.ok());
  int64_t x = 0;
  Status st = o->Int("a", 0, 10, &x);
  EXPECT_EQ(st.message(),
            "f.json: a: expected an integer, found \"" + std::string(40, 'x') + "...\"");
  EXPECT_EQ(o->Int("b", 0, 10, &x).message(), "f.json: b: expected an integer, found an array");
  EXPECT_EQ(DescribeJson(Json::parse("{\"k\": [1]}")), "an object");
  EXPECT_EQ(QuoteForMessage("\xff\xfe"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // invalid UTF-8
}

TEST(JsonUtil, TypedReadsCheckTypeAndRange) {
  auto j = ParseJson(
      "{\"big\": 4294967298, \"huge\": 18446744073709551615, \"neg\": -3, \"null\": null, "
      "\"f\": 1.5, \"s\": \"str\", \"b\": true, \"o\": {\"n\": 2}}",
      "f.json");
  ASSERT_TRUE(j.ok()) << j.status().message();
  auto o = JsonObject::Of(*j, "f.json", "");
  ASSERT_TRUE(o.ok());
  int64_t x = 7;
  // 4294967298 = 2^32 + 2: never truncated to 2.
  EXPECT_EQ(o->Int("big", 1, 2, &x).message(),
            "f.json: big: expected an integer in [1, 2], found 4294967298");
  EXPECT_EQ(o->Int("huge", 0, INT64_MAX, &x).message(),
            "f.json: huge: expected an integer in [0, 9223372036854775807], found "
            "18446744073709551615");
  EXPECT_EQ(o->Int("neg", 0, 5, &x).message(),
            "f.json: neg: expected an integer in [0, 5], found -3");
  EXPECT_EQ(o->Int("f", 0, 5, &x).message(), "f.json: f: expected an integer, found 1.5");
  EXPECT_EQ(o->Int("null", 0, 5, &x).message(), "f.json: null: expected an integer, found null");
  EXPECT_EQ(o->Int("none", 0, 5, &x).message(), "f.json: none: expected an integer, found nothing");
  EXPECT_TRUE(o->OptInt("none", 0, 5, &x).ok());
  EXPECT_EQ(x, 7);
  EXPECT_EQ(o->OptInt("null", 0, 5, &x).message(),  // null is a value unless null_is_absent
            "f.json: null: expected an integer, found null");
  EXPECT_TRUE(o->Int("big", 0, INT64_MAX, &x).ok());
  EXPECT_EQ(x, 4294967298);
  double d = 0;
  EXPECT_EQ(o->Number("f", 0, 1, &d).message(),
            "f.json: f: expected a number in [0, 1], found 1.5");
  EXPECT_TRUE(o->Number("f", 0, 2, &d).ok());
  EXPECT_EQ(d, 1.5);
  std::string s;
  EXPECT_EQ(o->String("b", &s).message(), "f.json: b: expected a string, found true");
  bool b = false;
  EXPECT_EQ(o->OptBool("s", &b).message(), "f.json: s: expected true or false, found \"str\"");
  auto nested = o->Object("o");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->Int("n", 5, 9, &x).message(),
            "f.json: o.n: expected an integer in [5, 9], found 2");
  EXPECT_EQ(o->Object("s").status().message(), "f.json: s: expected an object, found \"str\"");

  auto hf = JsonObject::Of(*j, "config.json", "", /*null_is_absent=*/true);
  ASSERT_TRUE(hf.ok());
  x = 7;
  EXPECT_TRUE(hf->OptInt("null", 0, 5, &x).ok());  // Hugging Face's None: the default stays
  EXPECT_EQ(x, 7);
  EXPECT_EQ(hf->Int("null", 0, 5, &x).message(),  // but a required field must hold a value
            "config.json: null: expected an integer, found null");
}

}  // namespace
}  // namespace quamba
