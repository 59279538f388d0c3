#include "json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace spawn::json {
namespace {

const Value kNull;
const Array kEmptyArray;
const Object kEmptyObject;

void dump_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

class Parser {
 public:
  explicit Parser(const std::string& t) : t_(t) {}
  Value document() {
    Value v = value();
    ws();
    if (i_ != t_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw std::runtime_error(std::string("invalid JSON at offset ") + std::to_string(i_) + ": " + what);
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
  }
  bool literal(const char* word) {
    std::string w(word);
    if (t_.compare(i_, w.size(), w) == 0) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  Value value() {
    ws();
    if (i_ >= t_.size()) fail("unexpected end");
    char c = t_[i_];
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') return Value(str());
    if (literal("true")) return Value(true);
    if (literal("false")) return Value(false);
    if (literal("null")) return Value();
    return number();
  }
  Value number() {
    const char* start = t_.c_str() + i_;
    char* end = nullptr;
    double d = std::strtod(start, &end);
    if (end == start) fail("expected a value");
    i_ += static_cast<size_t>(end - start);
    return Value(d);
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i_ < t_.size() && t_[i_] != '"') {
      char c = t_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) fail("unterminated escape");
      char e = t_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > t_.size()) fail("short \\u escape");
          unsigned cp = static_cast<unsigned>(std::strtoul(t_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
          // Encode the BMP code point as UTF-8 (surrogate pairs do not occur in our inputs).
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += e;
      }
    }
    if (i_ >= t_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  Value array() {
    expect('[');
    Array a;
    if (eat(']')) return Value(std::move(a));
    do {
      a.push_back(value());
    } while (eat(','));
    expect(']');
    return Value(std::move(a));
  }
  Value object() {
    expect('{');
    Object o;
    if (eat('}')) return Value(std::move(o));
    do {
      ws();
      std::string k = str();
      expect(':');
      o.emplace_back(std::move(k), value());
    } while (eat(','));
    expect('}');
    return Value(std::move(o));
  }
  const std::string& t_;
  size_t i_ = 0;
};

}  // namespace

const Array& Value::array() const { return is_array() ? a_ : kEmptyArray; }
const Object& Value::object() const { return is_object() ? o_ : kEmptyObject; }

const Value& Value::operator[](const std::string& key) const {
  for (const auto& [k, v] : object()) {
    if (k == key) return v;
  }
  return kNull;
}

Value& Value::set(const std::string& key, Value v) {
  if (!is_object()) *this = Value(Object{});
  for (auto& [k, existing] : o_) {
    if (k == key) {
      existing = std::move(v);
      return *this;
    }
  }
  o_.emplace_back(key, std::move(v));
  return *this;
}

Value& Value::push(Value v) {
  if (!is_array()) *this = Value(Array{});
  a_.push_back(std::move(v));
  return *this;
}

std::string Value::dump() const {
  std::string out;
  dump(out);
  return out;
}

void Value::dump(std::string& out) const {
  if (is_null()) {
    out += "null";
  } else if (kind_ == Kind::kBool) {
    out += b_ ? "true" : "false";
  } else if (is_number()) {
    double d = d_;
    if (!std::isfinite(d)) {
      out += "null";
    } else if (d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) {
      out += std::to_string(static_cast<long long>(d));
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", d);
      out += buf;
    }
  } else if (is_string()) {
    dump_string(s_, out);
  } else if (is_array()) {
    out += '[';
    bool first = true;
    for (const auto& v : a_) {
      if (!first) out += ',';
      first = false;
      v.dump(out);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : o_) {
      if (!first) out += ',';
      first = false;
      dump_string(k, out);
      out += ':';
      v.dump(out);
    }
    out += '}';
  }
}

Value parse(const std::string& text) { return Parser(text).document(); }

}  // namespace spawn::json
