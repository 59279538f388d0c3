// A small JSON value: enough to write every output of spawn-executor and to read back the
// thresholds data file, the sampler's JSON lines and the run report (for `trace`).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spawn::json {

class Value;
using Array = std::vector<Value>;
// Keys keep insertion order so the output reads in the order the code builds it.
using Object = std::vector<std::pair<std::string, Value>>;

// A tagged struct rather than std::variant: GCC 12 reports false maybe-uninitialized warnings
// on variants holding strings, and the build treats warnings as errors.
class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::kBool), b_(b) {}
  Value(int i) : Value(static_cast<double>(i)) {}
  Value(unsigned i) : Value(static_cast<double>(i)) {}
  Value(long i) : Value(static_cast<double>(i)) {}
  Value(unsigned long i) : Value(static_cast<double>(i)) {}
  Value(long long i) : Value(static_cast<double>(i)) {}
  Value(unsigned long long i) : Value(static_cast<double>(i)) {}
  Value(double d) : kind_(Kind::kNumber), d_(d) {}
  Value(const char* s) : kind_(Kind::kString), s_(s) {}
  Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}
  Value(Array a) : kind_(Kind::kArray), a_(std::move(a)) {}
  Value(Object o) : kind_(Kind::kObject), o_(std::move(o)) {}
  template <typename T>
  Value(const std::optional<T>& o) : Value() {
    if (o) *this = Value(*o);
  }

  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_array() const { return kind_ == Kind::kArray; }
  double number(double fallback = 0) const { return is_number() ? d_ : fallback; }
  std::string string(const std::string& fallback = "") const { return is_string() ? s_ : fallback; }
  bool boolean(bool fallback = false) const { return kind_ == Kind::kBool ? b_ : fallback; }
  const Array& array() const;
  const Object& object() const;
  // Member lookup; a missing key (or a non-object) yields null.
  const Value& operator[](const std::string& key) const;
  // Appends (or replaces) a member; the value must be an object.
  Value& set(const std::string& key, Value v);
  // Appends to an array value.
  Value& push(Value v);

  std::string dump() const;
  void dump(std::string& out) const;

 private:
  Kind kind_ = Kind::kNull;
  bool b_ = false;
  double d_ = 0;
  std::string s_;
  Array a_;
  Object o_;
};

// Parses one JSON text; throws std::runtime_error naming the offset on malformed input.
Value parse(const std::string& text);

}  // namespace spawn::json
