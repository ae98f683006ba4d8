// krunlet's in-process virtio-fs server: the FUSE server side (DESIGN.md §4).
//
// The virtio-fs device hands every request of a descriptor chain to Server::handle(). The server
// decodes it (fuse_wire.h), routes it (dispatcher.h) to the filesystem interface (fs_api.h), which
// is the host passthrough backend (passthrough.h) behind the virtual-entries overlay that serves
// /init.krun (virtual_entries.h). Nothing here needs KVM.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "virtiofs/cache_policy.h"

namespace krunlet::fs {

class FileSystem;
class Dispatcher;

// Who keeps the guest's POSIX (fcntl) and flock locks on this share.
enum class LockPolicy {
    // The guest kernel, as on a local filesystem: FUSE_POSIX_LOCKS / FUSE_FLOCK_LOCKS are not
    // offered, every lock semantic (blocking waits included) is the guest kernel's own, and
    // host processes don't see the guest's locks. Right for a rootfs only this guest uses.
    Guest,
    // The host: locks are OFD locks / flock(2) on host files, so host processes and other
    // guests sharing the directory see them. The server answers every request at once, so a
    // blocking request (F_SETLKW, flock without LOCK_NB) that conflicts fails with ENOLCK
    // instead of waiting (passthrough_locks.cpp says why).
    Host,
};

struct ServerConfig {
    std::string root_dir;                    // host directory to share (the container rootfs)
    bool read_only = false;                  // every mutating op then gets EROFS
    std::span<const uint8_t> init_binary;    // served read-only at /init.krun; empty = none.
                                             // Not copied: it must outlive the Server.
    CachePolicy cache = CachePolicy::Auto;   // see cache_policy.h
    // How long the guest may trust a name (entry) or attributes (attr) before asking again;
    // unset = the policy's default (never 0 s, auto 1 s, always 86400 s). 0 to
    // kMaxCacheTimeout; parse_cache_timeout() reads the "seconds[.fraction]" form.
    std::optional<std::chrono::nanoseconds> entry_timeout;
    std::optional<std::chrono::nanoseconds> attr_timeout;
    LockPolicy locks = LockPolicy::Guest;
    size_t max_inodes = 65536;               // live looked-up inodes (root included); ENFILE past it
    size_t max_handles = 65536;              // open file + directory handles; ENFILE past it
};

struct ServerStats {
    size_t inodes = 0;   // live passthrough inodes, root included
    size_t handles = 0;  // open passthrough file and directory handles
    size_t lock_owners = 0;  // descriptors kept for POSIX lock owners (LockPolicy::Host);
                             // they count against max_handles too
};

class Server {
public:
    // Opens cfg.root_dir (it must be a directory) and /proc/self/fd, probes openat2 and whether
    // the process may switch fsuid/fsgid. Errors name the path and the fix.
    static Result<std::unique_ptr<Server>> create(ServerConfig cfg);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Handle one FUSE request. `in` = every device-readable byte of the virtqueue descriptor chain,
    // concatenated (struct fuse_in_header + op args [+ write payload]); guest-controlled.
    // `out` = the chain's device-writable buffers in order. Returns how many bytes were written
    // into `out` (fuse_out_header + reply); 0 for requests that get no reply (FORGET,
    // BATCH_FORGET, INTERRUPT) and when not even a fuse_out_header fits into `out`.
    // `in_tail`: more bytes of the request, after `in`, left where they are (guest memory)
    // instead of being copied: the device passes a WRITE payload this way, and the server
    // hands those bytes to write(2) without reading them. Any other opcode with a tail is
    // EINVAL. h.len covers `in` and `in_tail` together.
    // Safe to call from several threads at once.
    size_t handle(std::span<const uint8_t> in, std::span<const struct iovec> out,
                  std::span<const struct iovec> in_tail = {});

    ServerStats stats() const;

private:
    Server() = default;
    static Result<std::unique_ptr<Server>> create_impl(ServerConfig cfg);
    size_t handle_impl(std::span<const uint8_t> in, std::span<const struct iovec> out,
                       std::span<const struct iovec> in_tail);
    struct Parts;
    std::unique_ptr<Parts> p_;
};

// Hard limit on one request: a 1 MiB payload plus the header. max_write (negotiated in INIT)
// leaves room for fuse_write_in below this.
inline constexpr size_t kMaxRequestPayload = size_t{1} << 20;

}  // namespace krunlet::fs
