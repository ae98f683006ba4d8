// vsock <-> host unix stream sockets: libkrun's krun_add_vsock_port (the guest connects to a
// vsock port and reaches a host socket) and krun_add_vsock_port2(..., listen=true) (a host
// client connects to a socket path and reaches a guest listener).
//
// Each connection pairs one VsockStream with one unix socket and copies both ways, with
// bounded buffers and back-pressure in both directions:
//   - guest -> host: the service defers credit (VsockService::defers_credit), so the guest may
//     only send what the unix peer has actually taken, plus one receive window;
//   - host -> guest: the socket is not read while more than VsockStream::kDrainedBytes wait
//     for the guest, and reading resumes on on_drained().
// All of it runs on the event loop thread under the vsock transport's mutex (DeviceEnv), like
// every other VsockStream caller.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "devices/vsock.h"
#include "virtio/device.h"

namespace krunlet::devices {

class VsockUnixBridge final : public VsockService, public std::enable_shared_from_this<VsockUnixBridge> {
public:
    // Guest-initiated: register the result with VsockDevice::add_service(port, bridge). Each
    // guest connection connects to `path`; if nobody listens there the guest sees its
    // connection closed at once.
    static Result<std::shared_ptr<VsockUnixBridge>> connect_to(virtio::DeviceEnv& env, std::string path);

    // Host-initiated: listens on `path` (a stale socket there is replaced; anything else is
    // an error) and opens a vsock stream to the guest's `guest_port` for every client. The
    // socket file is removed again on destruction.
    static Result<std::shared_ptr<VsockUnixBridge>> listen_on(virtio::DeviceEnv& env, VsockDevice& dev,
                                                              std::string path, uint32_t guest_port);

    ~VsockUnixBridge() override;
    VsockUnixBridge(const VsockUnixBridge&) = delete;
    VsockUnixBridge& operator=(const VsockUnixBridge&) = delete;

    void on_connect(VsockStream& stream) override;
    void on_data(VsockStream& stream, std::span<const uint8_t> bytes) override;
    void on_close(VsockStream& stream) override;
    void on_drained(VsockStream& stream) override;
    bool defers_credit() const override { return true; }

    size_t connection_count() const { return pipes_.size(); }
    const std::string& path() const { return path_; }

    // Bytes read from the unix socket per read(2): one vsock packet's worth.
    static constexpr size_t kReadChunk = 64 * 1024;
    // Sockets kept after their stream closed until the unix peer has taken the guest's last
    // bytes (at most one receive window each); beyond this many the rest is dropped.
    static constexpr size_t kMaxLingering = VsockDevice::kMaxConnections;

private:
    struct Pipe {
        UniqueFd fd;
        VsockStream* stream = nullptr;  // nullptr once the stream closed (the pipe lingers)
        bool connected = false;     // the vsock side is open (host-initiated: after RESPONSE)
        bool reading = false;       // EPOLLIN wanted
        bool lingering = false;     // counted in lingering_
        uint32_t watched = 0;       // events registered with env_
        std::vector<uint8_t> backlog;  // guest -> host bytes the socket has not taken yet
    };

    VsockUnixBridge(virtio::DeviceEnv& env, VsockDevice* dev, std::string path, uint32_t guest_port);

    Pipe* find(VsockStream& stream);
    void add_pipe(UniqueFd fd, VsockStream& stream, bool connected);
    void on_accept();
    void on_socket(uint64_t id, uint32_t events);
    void pump_to_guest(uint64_t id, Pipe& p);
    void flush_backlog(Pipe& p);
    void update_watch(uint64_t id, Pipe& p);
    void drop(uint64_t id);  // unwatch and close the socket, forget the pipe

    virtio::DeviceEnv& env_;
    VsockDevice* dev_;  // listen mode only; the device owns this service, so it outlives it
    std::string path_;
    uint32_t guest_port_;
    UniqueFd listener_;
    uint64_t next_id_ = 1;
    size_t lingering_ = 0;  // pipes whose stream closed, still flushing their backlog
    std::map<uint64_t, Pipe> pipes_;
    std::map<VsockStream*, uint64_t> ids_;
};

}  // namespace krunlet::devices
