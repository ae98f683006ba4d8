// The network part of Vm::create: from NetConfig to a backend and the
// virtio-net device options, so vm.cpp's attach_net stays a few lines.
#pragma once

#include <memory>

#include "base/result.h"
#include "devices/net.h"
#include "net/backend.h"
#include "virtio/device.h"
#include "vmm/vm_config.h"

namespace krunlet {

namespace net {
class SlirpBackend;
}

struct NetSetup {
    std::unique_ptr<net::NetBackend> backend;
    net::SlirpBackend* slirp = nullptr;  // the backend, when it is slirp (for port mirroring)
    devices::NetDevice::Options device;
};

// Makes the backend `net` asks for, on `env` (the net device's env):
//   Slirp       libslirp with the published ports added (a port that cannot
//               be taken is logged and skipped, the VM still starts);
//   UnixStream  the socket at net.unixstream_path, or a duplicate of
//               net.unixstream_fd; a link that goes down later is logged.
// Logs go to stderr when `log_level` is 1 (error) or more.
Result<NetSetup> make_net_backend(virtio::DeviceEnv& env, const NetConfig& net, int log_level);

}  // namespace krunlet
