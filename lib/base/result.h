// Result<T>: the error-or-value return type used everywhere in krunlet.
//
// Factories are `static Result<T> create(...)`, so no object is ever half-built
// (DESIGN.md §5). Errors carry a positive errno (the C API returns it negated)
// and a one-line message that names the fix where there is one.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace krunlet {

struct Error {
    int code = EINVAL;  // positive errno
    std::string message;
};

inline Error make_error(int code, std::string message) { return Error{code, std::move(message)}; }

// The current errno with a prefix, for failed system calls.
Error errno_error(const std::string& what);

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
    Result(Error error) : v_(std::move(error)) {}      // NOLINT: implicit by design

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    T&& operator*() && { return std::move(*this).value(); }

    const Error& error() const { return std::get<Error>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const { return err_; }

private:
    Error err_{};
    bool failed_ = false;
};

inline Result<void> ok_result() { return {}; }

}  // namespace krunlet

// Propagate an error from an expression returning Result<...>.
#define KRUNLET_CHECK(expr)                                  \
    do {                                                     \
        auto krunlet_check_r_ = (expr);                      \
        if (!krunlet_check_r_.ok()) return krunlet_check_r_.error(); \
    } while (0)
