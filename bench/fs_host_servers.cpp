#include "fs_host_servers.h"

#include <sys/prctl.h>
#include <unistd.h>

#include "proc_cpu.h"
#include "virtiofs/server.h"

namespace krunlet::bench::fs_host {
namespace {

// Named as the VMM names a queue thread, so the guest bench's thread test counts it too.
constexpr const char* kServeThread = "virtio-fs";

}  // namespace

Result<std::unique_ptr<KrunletFs>> KrunletFs::start(const std::string& root) {
    std::unique_ptr<KrunletFs> k(new KrunletFs());
    fs::ServerConfig cfg;
    cfg.root_dir = root;
    cfg.cache = fs::CachePolicy::Auto;  // what krunlet uses for the root filesystem
    auto server = fs::Server::create(cfg);
    if (!server.ok()) return server.error();
    auto dev = devices::FsDevice::create("bench", std::move(*server));
    if (!dev.ok()) return dev.error();
    k->dev_ = std::move(*dev);
    auto drv = VirtqDriver::create_detached(k->dev_->queue_max_sizes(), kQueueSize, kDriverRam, true);
    if (!drv.ok()) return drv.error();
    k->drv_ = std::move(*drv);
    KRUNLET_CHECK(k->drv_->activate(*k->dev_, virtio::kFeatureVersion1 | virtio::kFeatureEventIdx));
    // What the VMM's QueueThread (lib/vmm/device_slot.cpp) does: block in read() on the
    // one kick eventfd, then serve every queue.
    k->thread_ = std::thread([p = k.get()] {
        ::prctl(PR_SET_NAME, kServeThread);
        const int kick = p->drv_->kick_fd(0);
        uint64_t v;
        while (::read(kick, &v, sizeof v) == sizeof v && !p->stopping_)
            for (uint16_t q = 0; q < p->drv_->queue_count(); ++q) (void)p->dev_->queue_notify(q);
    });
    return k;
}

KrunletFs::~KrunletFs() {
    if (thread_.joinable()) {
        stopping_ = true;
        drv_->kick(0);
        thread_.join();
    }
}

Result<double> KrunletFs::cpu_s() {
    auto s = sample_threads(::getpid(), is_krunlet_queue_thread);  // the only such thread here
    if (!s.ok()) return s.error();
    return s->matched_s;
}

Result<std::unique_ptr<VirtiofsdFs>> VirtiofsdFs::start(const std::string& program, const std::string& root) {
    auto proc = Virtiofsd::start(program, root);
    if (!proc.ok()) return proc.error();
    std::unique_ptr<VirtiofsdFs> v(new VirtiofsdFs(std::move(*proc)));
    static constexpr uint16_t kMax[] = {kQueueSize, kQueueSize};  // hiprio, request
    auto drv = VirtqDriver::create_detached(kMax, kQueueSize, kDriverRam);
    if (!drv.ok()) return drv.error();
    v->drv_ = std::move(*drv);
    auto fe = VhostUserFrontend::connect(v->proc_.socket());
    if (!fe.ok()) return fe.error();
    v->frontend_ = std::move(*fe);
    if (auto r = v->frontend_->start(*v->drv_); !r.ok())
        return make_error(r.error().code, r.error().message + "; virtiofsd stderr:\n" + v->proc_.process().stderr_tail());
    return v;
}

Result<double> VirtiofsdFs::cpu_s() {
    auto s = sample_threads(proc_.process().pid(), [](const std::string&) { return false; });
    if (!s.ok()) return s.error();
    return s->total();
}

}  // namespace krunlet::bench::fs_host
