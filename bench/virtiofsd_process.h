// QEMU's C virtiofsd as krunlet-bench starts it, for both places that compare against it: the
// guest workload under QEMU (fs_engines.cpp) and the host-side request harness
// (fs_host_servers.cpp). Its settings match krunlet's server (docs/bench.md, "What is matched").
#pragma once

#include <string>

#include "base/result.h"
#include "child_process.h"

namespace krunlet::bench {

// A running virtiofsd serving `root` on a vhost-user socket in a private directory. The
// destructor kills it if it is still running and removes the directory and the pid file
// virtiofsd leaves behind.
class Virtiofsd {
public:
    static Result<Virtiofsd> start(const std::string& program, const std::string& root);
    Virtiofsd(Virtiofsd&& o) noexcept;
    Virtiofsd& operator=(Virtiofsd&&) = delete;
    Virtiofsd(const Virtiofsd&) = delete;
    Virtiofsd& operator=(const Virtiofsd&) = delete;
    ~Virtiofsd();

    const std::string& socket() const { return socket_; }
    Child& process() { return child_; }

private:
    Virtiofsd(std::string dir, Child child);
    std::string dir_;
    std::string socket_;
    Child child_;
};

// One line naming virtiofsd's settings, for the benchmarks' footers.
const char* virtiofsd_settings_summary();

}  // namespace krunlet::bench
