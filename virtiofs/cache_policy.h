// How much the guest may cache (issue 3, "Cache policy"). The server itself caches no file
// data; the policy only sets what the replies allow the guest's FUSE client to keep:
//
//   policy   entry / attr timeout   file open flags          directory open flags
//   never    0 s / 0 s              FOPEN_DIRECT_IO          -
//   auto     1 s / 1 s              -  (close-to-open)       -
//   always   86400 s / 86400 s      FOPEN_KEEP_CACHE         FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR
//
// never:  every read and write goes to the host, and names and attributes are asked for every
//         time: a host-side change is visible at once. (FOPEN_DIRECT_IO also means the guest
//         refuses MAP_SHARED mappings of files, as with virtiofsd's cache=none.)
// auto:   close-to-open: without FOPEN_KEEP_CACHE the guest drops a file's cached pages on
//         every open, so a host-side change is seen after the next open; names and attributes
//         may be up to the timeouts old.
// always: the guest keeps pages and directory listings across opens; only for shares that
//         nothing but this guest changes.
// The timeouts can be set apart from the policy (ServerConfig::entry_timeout/attr_timeout).
// A negative LOOKUP reply (nodeid 0) is cached for the entry timeout; with 0 it is a plain
// ENOENT.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace krunlet::fs {

enum class CachePolicy {
    Never,
    Auto,  // the default
    Always,
};

// Longest timeout accepted: the guest turns timeouts into jiffies and saturates far beyond it.
inline constexpr std::chrono::nanoseconds kMaxCacheTimeout = std::chrono::hours(24 * 365);

std::chrono::nanoseconds default_entry_timeout(CachePolicy p);
std::chrono::nanoseconds default_attr_timeout(CachePolicy p);
// FOPEN_* flags the policy adds to every OPEN/CREATE (dir = false) or OPENDIR (dir = true) reply.
uint32_t policy_open_flags(CachePolicy p, bool dir);

// "never" | "auto" | "always" (what a --cache flag or environment variable carries).
Result<CachePolicy> parse_cache_policy(std::string_view s);
std::string_view to_string(CachePolicy p);
// A timeout in seconds, with up to 9 decimals: "0", "1", "0.25", "86400". At most
// kMaxCacheTimeout; errors name the accepted form.
Result<std::chrono::nanoseconds> parse_cache_timeout(std::string_view s);

}  // namespace krunlet::fs
