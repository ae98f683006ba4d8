// The host side of `krunlet-bench net`: one server that speaks krunlet-vsockstress's protocol
// (tests/guest/vsock_stress_proto.h) on every listener the engines need:
//   - a unix socket, which krunlet's --vsock-port PORT:PATH bridges the guest's vsock port to;
//   - an AF_VSOCK port, which QEMU's vhost-vsock guest reaches directly (CID 2);
//   - a TCP port on 127.0.0.1, which both engines' slirp reaches as 10.0.2.2.
// Each connection is served on its own thread (serve_one), so both engines meet the same
// server code and the comparison is of the transports alone.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet::bench {

class NetServer {
public:
    // unix_path: "" for none. vsock_port: 0 for none (needs AF_VSOCK on this host). The TCP
    // listener always exists, on an ephemeral port of 127.0.0.1.
    static Result<std::unique_ptr<NetServer>> start(const std::string& unix_path, uint32_t vsock_port);
    ~NetServer();
    NetServer(const NetServer&) = delete;
    NetServer& operator=(const NetServer&) = delete;

    uint16_t tcp_port() const { return tcp_port_; }
    bool has_vsock() const { return vsock_.valid(); }
    // Connections served with an error since the last call (a message each), cleared.
    std::vector<std::string> take_errors();

private:
    NetServer() = default;
    void accept_loop();
    void reap(bool all);

    UniqueFd unix_, vsock_, tcp_;
    UniqueFd stop_;  // eventfd: wakes the accept loop for the destructor
    std::string unix_path_;
    uint16_t tcp_port_ = 0;
    std::thread acceptor_;

    struct Worker {
        std::thread thread;
        std::atomic<bool> done{false};
    };
    std::list<Worker> workers_;  // only touched by the acceptor thread (and the destructor after it)
    std::mutex mu_;
    std::vector<std::string> errors_;
};

}  // namespace krunlet::bench
