// What the two halves of krunlet-bench net-host share (net_host_bench.cpp: vsock,
// net_host_slirp.cpp: virtio-net + libslirp): the host application on the far side of the
// device, on its own thread, and the rows of the result table.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "net_bench.h"

namespace krunlet::bench {

// One measured quantity over the rounds: event-loop CPU per unit, and units per wall second.
struct HostRow {
    std::string name;
    std::string unit;
    std::vector<double> cpu_us;
    std::vector<double> rate;
    void add(double cpu_s, std::chrono::steady_clock::duration wall, double units) {
        cpu_us.push_back(cpu_s * 1e6 / units);
        rate.push_back(units / std::chrono::duration<double>(wall).count());
    }
};

// A listening socket (unix, or TCP on 127.0.0.1) whose connections are served one after
// another on a thread.
class StreamPeer {
public:
    static Result<std::unique_ptr<StreamPeer>> unix_socket(const std::string& path);
    static Result<std::unique_ptr<StreamPeer>> tcp_loopback();
    ~StreamPeer();
    StreamPeer(const StreamPeer&) = delete;
    StreamPeer& operator=(const StreamPeer&) = delete;

    uint16_t port() const { return port_; }
    // Accepts `conns` connections in turn and runs `serve` on each (then closes it).
    void start(int conns, std::function<void(int fd)> serve);
    void join();

    // Serve functions: read to EOF counting into `bytes`; echo every byte; write n bytes.
    void drain(int fd);
    static void echo(int fd);
    static void write_n(int fd, uint64_t n);

    std::atomic<uint64_t> bytes{0};
    std::atomic<int> accepted{0};

private:
    StreamPeer() = default;
    UniqueFd listener_;
    std::string path_;
    uint16_t port_ = 0;
    std::thread thread_;
};

// net_host_slirp.cpp: the virtio-net + slirp rows.
Result<std::vector<HostRow>> run_slirp_rows(const NetHostOptions& o);

}  // namespace krunlet::bench
