#include "cbt/xml_elements.h"

#include <expat.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cbtd::cbt {
namespace {

struct ParseState {
  std::vector<XmlElement> elements;
  int depth = 0;
  bool bad_text = false;
};

void OnStart(void* data, const XML_Char* name, const XML_Char** attrs) {
  auto* st = static_cast<ParseState*>(data);
  XmlElement e;
  e.name = name;
  e.depth = st->depth++;
  for (int i = 0; attrs[i] != nullptr; i += 2) {
    e.attributes[attrs[i]] = attrs[i + 1];
  }
  st->elements.push_back(std::move(e));
}

void OnEnd(void* data, const XML_Char*) {
  static_cast<ParseState*>(data)->depth--;
}

void OnText(void* data, const XML_Char* s, int len) {
  for (int i = 0; i < len; ++i) {
    if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r') {
      static_cast<ParseState*>(data)->bad_text = true;
    }
  }
}

struct ParserDeleter {
  void operator()(XML_Parser p) const { XML_ParserFree(p); }
};

}  // namespace

absl::StatusOr<std::vector<XmlElement>> ParseXmlElements(
    std::string_view xml, std::string_view what) {
  std::unique_ptr<XML_ParserStruct, ParserDeleter> parser(
      XML_ParserCreate("UTF-8"));
  if (!parser) return absl::ResourceExhaustedError("XML_ParserCreate failed");
  ParseState st;
  XML_SetUserData(parser.get(), &st);
  XML_SetElementHandler(parser.get(), OnStart, OnEnd);
  XML_SetCharacterDataHandler(parser.get(), OnText);
  if (xml.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is too large to parse"));
  }
  if (XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()),
                XML_TRUE) != XML_STATUS_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is not well-formed XML at line ",
                     XML_GetCurrentLineNumber(parser.get()), ": ",
                     XML_ErrorString(XML_GetErrorCode(parser.get()))));
  }
  if (st.bad_text) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " holds unexpected text content"));
  }
  return std::move(st.elements);
}

absl::StatusOr<uint64_t> XmlUintAttribute(const XmlElement& e,
                                          const std::string& name,
                                          std::string_view what) {
  auto it = e.attributes.find(name);
  if (it == e.attributes.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(what), ": <", e.name, "> lacks attribute '", name, "'"));
  }
  uint64_t v = 0;
  if (!ParseDecimalUint64(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": <", e.name, " ", name, "=\"",
                     it->second, "\"> is not a decimal number"));
  }
  return v;
}

}  // namespace cbtd::cbt
