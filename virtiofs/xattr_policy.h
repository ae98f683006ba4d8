// Which extended attribute names the guest may use, and where each is kept on the host.
//
// The server runs with the host's privileges, so a name passed straight through would act on
// the host with the host's meaning. Three namespaces need care:
//   - trusted.* is root-only metadata that the host itself interprets (overlayfs keeps its
//     redirects, opaque markers and origins there). The guest's root is root only in the
//     guest, and its overlayfs must neither read the host's trusted.overlay.* nor write its
//     own into the host's view. So trusted.NAME lives on the host as user.krunlet.trusted.NAME:
//     private to the guest, and still working when the share is an overlayfs merged
//     directory (podman's rootfs), where trusted.overlay.* is refused with EPERM.
//   - security.* holds host LSM labels (security.selinux, security.apparmor, ...): the guest
//     must not relabel host files, and its own LSM labels are its own business, so they are
//     mapped the same way. The one exception is security.capability: file capabilities in a
//     container image must work in the guest, and setting them grants no more than the
//     setuid bit the guest can already set on files it owns.
//   - system.* only carries POSIX ACLs (which map to the host's ACLs on the same files); any
//     other system.* name is EOPNOTSUPP, as for an unknown namespace.
// user.krunlet.* is reserved for the mapping: the guest gets EPERM if it names it directly, so
// an unprivileged guest user cannot forge trusted.* through a user.* write. Listings show
// mapped names under their guest name and hide what the guest cannot address.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "virtiofs/fs_api.h"

namespace krunlet::fs::xattr {

// The host prefix of mapped names.
inline constexpr std::string_view kMappedPrefix = "user.krunlet.";

// The host name for a guest name (guest-controlled): EPERM for the reserved prefix,
// EOPNOTSUPP for names outside user/trusted/security/system.posix_acl_*, ERANGE when the
// mapped name exceeds XATTR_NAME_MAX.
Result<std::string> to_host(std::string_view guest_name);

// Rewrites a host listxattr(2) result (NUL-terminated names) into the guest's view and
// returns its length. `out` may be empty (a size query); otherwise ERANGE if it is too small.
// The guest's view is never longer than the host's list. trusted.* names are listed only for
// a `privileged` caller (the guest's root), as the kernel lists them only to CAP_SYS_ADMIN;
// the guest's FUSE client does not filter listings itself.
Result<size_t> to_guest_list(std::span<const char> host_list, std::span<char> out, bool privileged = true);

}  // namespace krunlet::fs::xattr
