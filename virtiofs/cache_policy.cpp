#include "virtiofs/cache_policy.h"

#include <linux/fuse.h>

#include <charconv>
#include <string>

namespace krunlet::fs {

using std::chrono::nanoseconds;
using std::chrono::seconds;

nanoseconds default_entry_timeout(CachePolicy p) {
    switch (p) {
        case CachePolicy::Never:
            return nanoseconds{0};
        case CachePolicy::Auto:
            return seconds{1};
        case CachePolicy::Always:
            return seconds{86400};
    }
    return nanoseconds{0};
}

nanoseconds default_attr_timeout(CachePolicy p) { return default_entry_timeout(p); }

uint32_t policy_open_flags(CachePolicy p, bool dir) {
    switch (p) {
        case CachePolicy::Never:
            return dir ? 0 : FOPEN_DIRECT_IO;
        case CachePolicy::Auto:
            return 0;  // close-to-open: the guest drops cached pages on every open
        case CachePolicy::Always:
            return dir ? (FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE) : FOPEN_KEEP_CACHE;
    }
    return 0;
}

Result<CachePolicy> parse_cache_policy(std::string_view s) {
    if (s == "never") return CachePolicy::Never;
    if (s == "auto") return CachePolicy::Auto;
    if (s == "always") return CachePolicy::Always;
    return make_error(EINVAL, "virtio-fs: unknown cache policy '" + std::string(s) +
                                  "'; use one of: never, auto, always");
}

std::string_view to_string(CachePolicy p) {
    switch (p) {
        case CachePolicy::Never:
            return "never";
        case CachePolicy::Auto:
            return "auto";
        case CachePolicy::Always:
            return "always";
    }
    return "?";
}

Result<nanoseconds> parse_cache_timeout(std::string_view s) {
    auto bad = [&] {
        return make_error(EINVAL, "virtio-fs: cache timeout '" + std::string(s) +
                                      "' is not a number of seconds from 0 to 31536000 (e.g. 0, 1, 0.25)");
    };
    size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot);
    std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    if (whole.empty() || (dot != std::string_view::npos && frac.empty()) || frac.size() > 9) return bad();
    uint64_t sec = 0;
    auto r = std::from_chars(whole.data(), whole.data() + whole.size(), sec);
    if (r.ec != std::errc{} || r.ptr != whole.data() + whole.size()) return bad();
    uint64_t nsec = 0;
    for (size_t i = 0; i < 9; ++i) {
        char ch = i < frac.size() ? frac[i] : '0';
        if (ch < '0' || ch > '9') return bad();
        nsec = nsec * 10 + static_cast<uint64_t>(ch - '0');
    }
    constexpr auto kMaxSec = std::chrono::duration_cast<seconds>(kMaxCacheTimeout).count();
    if (sec > static_cast<uint64_t>(kMaxSec) || (sec == static_cast<uint64_t>(kMaxSec) && nsec != 0)) return bad();
    return seconds{static_cast<int64_t>(sec)} + nanoseconds{static_cast<int64_t>(nsec)};
}

}  // namespace krunlet::fs
