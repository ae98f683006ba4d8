// The front-end (QEMU's) side of the vhost-user protocol, just enough to hand a VirtqDriver's
// memory and rings to a back-end in another process: krunlet-bench fs-host uses it to send
// virtiofsd the same FUSE requests it sends krunlet's server, with no guest and no QEMU.
//
// Messages follow QEMU's docs/interop/vhost-user.rst. VIRTIO_F_VERSION_1 and, if offered,
// VIRTIO_RING_F_EVENT_IDX are acked (QEMU's guests negotiate EVENT_IDX with virtiofsd too), but
// not VHOST_USER_F_PROTOCOL_FEATURES: the rings are then enabled as soon as their kick fd
// arrives, and no message is acknowledged.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "virtq_driver.h"

namespace krunlet::bench {

class VhostUserFrontend {
public:
    static Result<std::unique_ptr<VhostUserFrontend>> connect(const std::string& socket_path);

    // SET_OWNER, feature negotiation, SET_MEM_TABLE with the driver's memfd, then every queue's
    // size, base, addresses, call and kick eventfds. The back-end serves the queues from then
    // on, until this object is destroyed (closing the socket stops it).
    Result<void> start(const VirtqDriver& driver);

private:
    VhostUserFrontend() = default;
    Result<void> send(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds = {});
    Result<uint64_t> get_u64(uint32_t request);
    UniqueFd sock_;
};

}  // namespace krunlet::bench
