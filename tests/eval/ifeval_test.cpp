// IFEval instructions added beyond the first fifteen, loose scoring and the
// language detector, on hand-written responses whose expected outcome follows
// from the reference implementation's rules (worked out in the comments).
#include "eval/ifeval.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace kaival::eval {
namespace {

using OJ = nlohmann::ordered_json;

TEST(IFEval, BlankResponseFollowsNothingButUnknownIdsStillFail) {
  EXPECT_FALSE(ifeval_check("punctuation:no_comma", OJ::object(), " \n\t"));
  EXPECT_THROW(ifeval_check("keywords:nope", OJ::object(), ""), UnsupportedError);
  EXPECT_THROW(ifeval_check("keywords:letter_frequency", OJ{{"letter", "a"}, {"let_frequency", 1}, {"let_relation", "more than"}},
                            "a"),
               UnsupportedError);
}

TEST(IFEval, LetterFrequency) {
  // "A banana": lower-cased, 'a' occurs 4 times.
  auto kw = [](int n, const char* rel) { return OJ{{"letter", "a"}, {"let_frequency", n}, {"let_relation", rel}}; };
  EXPECT_TRUE(ifeval_check("keywords:letter_frequency", kw(4, "at least"), "A banana"));
  EXPECT_FALSE(ifeval_check("keywords:letter_frequency", kw(5, "at least"), "A banana"));
  EXPECT_FALSE(ifeval_check("keywords:letter_frequency", kw(4, "less than"), "A banana"));
  EXPECT_TRUE(ifeval_check("keywords:letter_frequency", kw(5, "less than"), "A banana"));
  EXPECT_FALSE(ifeval_check("keywords:letter_frequency", kw(1, "at least"), "berry"));
  EXPECT_THROW(ifeval_check("keywords:letter_frequency", OJ{{"letter", "ab"}, {"let_frequency", 1}, {"let_relation", "at least"}},
                            "ab"),
               FormatError);
}

TEST(IFEval, NumberSentences) {
  EXPECT_EQ(ifeval_count_sentences("Hello there. How are you? I am fine!"), 3u);
  // "Dr." and "p.m." followed by non-starters are abbreviations, "3.30" has no break.
  const char* two = "Dr. Smith arrived at 3.30 p.m. yesterday. It rained.";
  EXPECT_EQ(ifeval_count_sentences(two), 2u);
  // Numbered items split off as punkt does: "1." | "Buy milk 2." | "Walk the dog".
  EXPECT_EQ(ifeval_count_sentences("1. Buy milk\n2. Walk the dog"), 3u);
  EXPECT_EQ(ifeval_count_sentences("Wait... What happened? (Nothing.) Then we left."), 4u);
  auto kw = [](int n, const char* rel) { return OJ{{"num_sentences", n}, {"relation", rel}}; };
  EXPECT_TRUE(ifeval_check("length_constraints:number_sentences", kw(2, "at least"), two));
  EXPECT_FALSE(ifeval_check("length_constraints:number_sentences", kw(3, "at least"), two));
  EXPECT_TRUE(ifeval_check("length_constraints:number_sentences", kw(3, "less than"), two));
  EXPECT_FALSE(ifeval_check("length_constraints:number_sentences", kw(2, "less than"), two));
}

TEST(IFEval, NthParagraphFirstWord) {
  const char* r = "Intro text here.\n\nSecond paragraph begins.\n\n\"Finally, the end.\"";
  auto kw = [](int n, int nth, const char* w) { return OJ{{"num_paragraphs", n}, {"nth_paragraph", nth}, {"first_word", w}}; };
  EXPECT_TRUE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(3, 3, "Finally"), r));  // quote and comma dropped
  EXPECT_TRUE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(3, 2, "second"), r));
  EXPECT_FALSE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(3, 2, "finally"), r));
  EXPECT_FALSE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(2, 2, "second"), r));  // 3 paragraphs
  // Four newlines leave an empty field: 2 paragraphs counted, but the 2nd field is empty.
  EXPECT_FALSE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(2, 2, "b"), "A one.\n\n\n\nB two."));
  EXPECT_TRUE(ifeval_check("length_constraints:nth_paragraph_first_word", kw(2, 1, "a"), "A one.\n\n\n\nB two."));
  EXPECT_THROW(ifeval_check("length_constraints:nth_paragraph_first_word", kw(2, 3, "a"), "x"), FormatError);
}

TEST(IFEval, NumberPlaceholders) {
  auto kw = [](int n) { return OJ{{"num_placeholders", n}}; };
  EXPECT_TRUE(ifeval_check("detectable_content:number_placeholders", kw(2), "Send it to [address] by [date]."));
  EXPECT_FALSE(ifeval_check("detectable_content:number_placeholders", kw(3), "Send it to [address] by [date]."));
  EXPECT_FALSE(ifeval_check("detectable_content:number_placeholders", kw(1), "A [broken\nplaceholder]"));
}

TEST(IFEval, ConstrainedResponse) {
  EXPECT_TRUE(ifeval_check("detectable_format:constrained_response", OJ::object(), "My answer is yes."));
  EXPECT_TRUE(ifeval_check("detectable_format:constrained_response", OJ::object(), "Hmm.\nMy answer is maybe. "));
  EXPECT_FALSE(ifeval_check("detectable_format:constrained_response", OJ::object(), "My answer is Yes."));
  EXPECT_FALSE(ifeval_check("detectable_format:constrained_response", OJ::object(), "Yes."));
}

TEST(IFEval, MultipleSections) {
  const char* r = "SECTION 1\nIntro\nSECTION 2\nBody";
  auto kw = [](const char* s, int n) { return OJ{{"section_spliter", s}, {"num_sections", n}}; };
  EXPECT_TRUE(ifeval_check("detectable_format:multiple_sections", kw("SECTION", 2), r));
  EXPECT_FALSE(ifeval_check("detectable_format:multiple_sections", kw("SECTION", 3), r));
  EXPECT_FALSE(ifeval_check("detectable_format:multiple_sections", kw("Section", 1), r));  // case matters
  EXPECT_FALSE(ifeval_check("detectable_format:multiple_sections", kw("SECTION", 1), "SECTION one"));  // needs a number
}

TEST(IFEval, TwoResponses) {
  EXPECT_TRUE(ifeval_check("combination:two_responses", OJ::object(), "Answer one.\n******\nAnswer two."));
  EXPECT_TRUE(ifeval_check("combination:two_responses", OJ::object(), "******\nA\n******\nB\n******"));
  EXPECT_FALSE(ifeval_check("combination:two_responses", OJ::object(), "Same.\n******\n Same. "));
  EXPECT_FALSE(ifeval_check("combination:two_responses", OJ::object(), "A\n******\n\n******\nB"));
  EXPECT_FALSE(ifeval_check("combination:two_responses", OJ::object(), "Only one answer"));
  EXPECT_FALSE(ifeval_check("combination:two_responses", OJ::object(), "A\n******\nB\n******\nC"));
}

TEST(IFEval, RepeatPrompt) {
  OJ kw{{"prompt_to_repeat", "Write a poem about Seoul."}};
  EXPECT_TRUE(ifeval_check("combination:repeat_prompt", kw, "  write a poem about SEOUL. Here it is: ..."));
  EXPECT_FALSE(ifeval_check("combination:repeat_prompt", kw, "Here is a poem about Seoul."));
  EXPECT_FALSE(ifeval_check("combination:repeat_prompt", kw, "Write a poem"));
}

TEST(IFEval, CapitalWordFrequency) {
  // NASA, ESA, PARIS; "The" is not all upper case.
  const char* r = "The NASA team and the ESA team met in PARIS.";
  EXPECT_EQ(ifeval_count_capital_words(r), 3u);
  EXPECT_EQ(ifeval_count_capital_words("DON'T STOP, I said"), 4u);  // DO, N'T, STOP, I
  EXPECT_EQ(ifeval_count_capital_words("서울 2024 -- ..."), 0u);
  auto kw = [](int n, const char* rel) { return OJ{{"capital_frequency", n}, {"capital_relation", rel}}; };
  EXPECT_TRUE(ifeval_check("change_case:capital_word_frequency", kw(3, "at least"), r));
  EXPECT_FALSE(ifeval_check("change_case:capital_word_frequency", kw(4, "at least"), r));
  EXPECT_FALSE(ifeval_check("change_case:capital_word_frequency", kw(3, "less than"), r));
  EXPECT_TRUE(ifeval_check("change_case:capital_word_frequency", kw(4, "less than"), r));
}

TEST(IFEval, DetectLanguage) {
  EXPECT_EQ(detect_language("오늘은 날씨가 정말 좋아서 친구들과 함께 한강 공원에 가서 자전거를 탔습니다. 저녁에는 치킨을 먹었어요."), "ko");
  EXPECT_EQ(detect_language("The weather was lovely today, so we took the children to the park and had a picnic by the river."),
            "en");
  EXPECT_EQ(detect_language("Heute war das Wetter sehr schön, deshalb sind wir mit den Kindern in den Park gegangen und "
                            "haben am Fluss gepicknickt."),
            "de");
  EXPECT_EQ(detect_language("Сегодня была прекрасная погода, поэтому мы пошли с детьми в парк и устроили пикник у реки."),
            "ru");
  EXPECT_EQ(detect_language("आज मौसम बहुत अच्छा था, इसलिए हम बच्चों को पार्क में ले गए और नदी के किनारे पिकनिक मनाई।"), "hi");
  EXPECT_EQ(detect_language("आज हवामान खूप छान होते, म्हणून आम्ही मुलांना उद्यानात घेऊन गेलो आणि नदीकाठी जेवण केले."), "mr");
  EXPECT_EQ(detect_language("आज मौसम धेरै राम्रो थियो, त्यसैले हामी बच्चाहरूलाई पार्कमा लग्यौं र खाना खायौं।"), "ne");
  EXPECT_EQ(detect_language("Днес времето беше прекрасно, затова отидохме в парка с децата и си направихме пикник."), "bg");
  EXPECT_EQ(detect_language("Hôm nay thời tiết rất đẹp nên chúng tôi đưa các con ra công viên và ăn trưa bên sông."), "vi");
  EXPECT_EQ(detect_language("ذهبنا إلى الحديقة في يوم جميل مع الأطفال"), "ar");
  EXPECT_EQ(detect_language("امروز هوا خیلی خوب بود و ما با بچه‌ها به پارک رفتیم"), "fa");
  EXPECT_EQ(detect_language("آج موسم بہت اچھا تھا اس لیے ہم بچوں کے ساتھ پارک گئے"), "ur");
  EXPECT_EQ(detect_language("วันนี้อากาศดีมาก"), "th");
  EXPECT_EQ(detect_language("12345 !!! ---"), "");
}

TEST(IFEval, ResponseLanguage) {
  const char* ko = "서울은 한국의 수도이며 인구가 천만 명에 가깝습니다. 한강이 도시를 가로질러 흐릅니다.";
  EXPECT_TRUE(ifeval_check("language:response_language", OJ{{"language", "ko"}}, ko));
  EXPECT_FALSE(ifeval_check("language:response_language", OJ{{"language", "en"}}, ko));
  EXPECT_FALSE(ifeval_check("language:response_language", OJ{{"language", "ko"}},
                            "Seoul is the capital of Korea and has almost ten million people."));
  EXPECT_TRUE(ifeval_check("language:response_language", OJ{{"language", "hi"}}, "42 :-)"));  // no letters: as langdetect's error
}

TEST(IFEval, LooseVariants) {
  // First line is chatter; without it the response is one quotation / JSON.
  const char* quoted = "Sure, here it is:\n\"Hello world\"";
  EXPECT_FALSE(ifeval_check("startend:quotation", OJ::object(), quoted));
  EXPECT_TRUE(ifeval_check_loose("startend:quotation", OJ::object(), quoted));
  const char* json = "Here is the JSON:\n{\"a\": 1}\nHope this helps.";
  EXPECT_FALSE(ifeval_check("detectable_format:json_format", OJ::object(), json));
  EXPECT_TRUE(ifeval_check_loose("detectable_format:json_format", OJ::object(), json));  // both lines removed
  // Markdown bold around the repeated prompt: passes once '*' is removed.
  OJ kw{{"prompt_to_repeat", "Write a poem."}};
  EXPECT_FALSE(ifeval_check("combination:repeat_prompt", kw, "**Write a poem.** Roses..."));
  EXPECT_TRUE(ifeval_check_loose("combination:repeat_prompt", kw, "**Write a poem.** Roses..."));
  // Every line has a comma: no variant passes.
  EXPECT_FALSE(ifeval_check_loose("punctuation:no_comma", OJ::object(), "a, b\nc, d\ne, f"));
  EXPECT_FALSE(ifeval_check_loose("punctuation:no_comma", OJ::object(), "  "));
  EXPECT_THROW(ifeval_check_loose("keywords:nope", OJ::object(), "x"), UnsupportedError);
}

}  // namespace
}  // namespace kaival::eval
