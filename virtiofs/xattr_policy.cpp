// Extended attribute name mapping (see xattr_policy.h for the policy and its reasons).
#include "virtiofs/xattr_policy.h"

#include <linux/limits.h>

#include <cerrno>
#include <cstring>

namespace krunlet::fs::xattr {

namespace {

constexpr std::string_view kUser = "user.";
constexpr std::string_view kTrusted = "trusted.";
constexpr std::string_view kSecurity = "security.";
constexpr std::string_view kCapability = "security.capability";
constexpr std::string_view kAclAccess = "system.posix_acl_access";
constexpr std::string_view kAclDefault = "system.posix_acl_default";

// Names the host stores under the guest's own name.
bool passes_through(std::string_view n) {
    if (n.starts_with(kMappedPrefix)) return false;
    return n.starts_with(kUser) || n == kCapability || n == kAclAccess || n == kAclDefault;
}

// Names the host stores under kMappedPrefix + the guest's name.
bool is_mapped(std::string_view n) {
    return n.starts_with(kTrusted) || (n.starts_with(kSecurity) && n != kCapability);
}

}  // namespace

Result<std::string> to_host(std::string_view guest_name) {
    if (guest_name.starts_with(kMappedPrefix)) return fail(EPERM);
    if (passes_through(guest_name)) return std::string(guest_name);
    if (!is_mapped(guest_name)) return fail(EOPNOTSUPP);
    std::string host;
    host.reserve(kMappedPrefix.size() + guest_name.size());
    host.append(kMappedPrefix).append(guest_name);
    if (host.size() > XATTR_NAME_MAX) return fail(ERANGE);
    return host;
}

Result<size_t> to_guest_list(std::span<const char> host_list, std::span<char> out, bool privileged) {
    size_t need = 0;
    size_t pos = 0;
    while (pos < host_list.size()) {
        // Each name ends in NUL; a last name without one (a racing change) ends at the end.
        const char* start = host_list.data() + pos;
        const void* nul = std::memchr(start, '\0', host_list.size() - pos);
        const size_t len = nul ? static_cast<size_t>(static_cast<const char*>(nul) - start) : host_list.size() - pos;
        pos += len + 1;
        std::string_view name(start, len);
        if (name.starts_with(kMappedPrefix)) {
            name.remove_prefix(kMappedPrefix.size());
            if (!is_mapped(name)) continue;  // not one of ours (or a forged capability)
            if (!privileged && name.starts_with(kTrusted)) continue;
        } else if (!passes_through(name)) {
            continue;  // the host's own trusted.*, LSM labels, ...
        }
        if (name.empty()) continue;
        if (!out.empty()) {
            if (need + name.size() + 1 > out.size()) return fail(ERANGE);
            std::memcpy(out.data() + need, name.data(), name.size());
            out[need + name.size()] = '\0';
        }
        need += name.size() + 1;
    }
    return need;
}

}  // namespace krunlet::fs::xattr
