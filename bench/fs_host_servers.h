// The two servers `krunlet-bench fs-host` drives (fs_host_bench.cpp), each behind virtqueues
// in a memfd on which a VirtqDriver plays the guest kernel:
//  - krunlet: devices::FsDevice (descriptor walk, request copy, used ring, interrupt) around
//    fs::Server, on a thread named "virtio-fs" that waits as the VMM's queue thread does;
//  - virtiofsd: the same options as under QEMU in `krunlet-bench fs`, sent the driver's memfd
//    and rings over vhost-user (vhost_user_frontend.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "devices/fs.h"
#include "vhost_user_frontend.h"
#include "virtiofsd_process.h"
#include "virtq_driver.h"

namespace krunlet::bench::fs_host {

inline constexpr uint16_t kQueueSize = 128;     // both queues, both servers
inline constexpr size_t kDriverRam = 8u << 20;  // rings, the request and reply slots

// The serving side of one engine, behind the virtqueues of driver().
class ServedFs {
public:
    virtual ~ServedFs() = default;
    virtual VirtqDriver& driver() = 0;
    // CPU seconds the serving side has used so far; exact while it sleeps.
    virtual Result<double> cpu_s() = 0;
};

class KrunletFs final : public ServedFs {
public:
    // Serves `root` with the cache policy krunlet uses for a root filesystem.
    static Result<std::unique_ptr<KrunletFs>> start(const std::string& root);
    ~KrunletFs() override;
    VirtqDriver& driver() override { return *drv_; }
    Result<double> cpu_s() override;

private:
    KrunletFs() = default;
    std::unique_ptr<devices::FsDevice> dev_;
    std::unique_ptr<VirtqDriver> drv_;  // after the device: destroyed before it
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

class VirtiofsdFs final : public ServedFs {
public:
    static Result<std::unique_ptr<VirtiofsdFs>> start(const std::string& program, const std::string& root);
    VirtqDriver& driver() override { return *drv_; }
    Result<double> cpu_s() override;
    std::string stderr_tail() { return proc_.process().stderr_tail(); }

private:
    explicit VirtiofsdFs(Virtiofsd proc) : proc_(std::move(proc)) {}
    Virtiofsd proc_;  // destroyed last: it waits for virtiofsd to see the socket close
    std::unique_ptr<VirtqDriver> drv_;
    std::unique_ptr<VhostUserFrontend> frontend_;
};

}  // namespace krunlet::bench::fs_host
