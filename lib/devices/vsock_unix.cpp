#include "devices/vsock_unix.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace krunlet::devices {

namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return make_error(ENAMETOOLONG, "vsock: unix socket path '" + path + "' must be 1.." +
                                            std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

UniqueFd stream_socket() { return UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)); }

}  // namespace

VsockUnixBridge::VsockUnixBridge(virtio::DeviceEnv& env, VsockDevice* dev, std::string path, uint32_t guest_port)
    : env_(env), dev_(dev), path_(std::move(path)), guest_port_(guest_port) {}

Result<std::shared_ptr<VsockUnixBridge>> VsockUnixBridge::connect_to(virtio::DeviceEnv& env, std::string path) {
    if (auto addr = unix_address(path); !addr.ok()) return addr.error();
    return std::shared_ptr<VsockUnixBridge>(new VsockUnixBridge(env, nullptr, std::move(path), 0));
}

Result<std::shared_ptr<VsockUnixBridge>> VsockUnixBridge::listen_on(virtio::DeviceEnv& env, VsockDevice& dev,
                                                                      std::string path, uint32_t guest_port) {
    auto addr = unix_address(path);
    if (!addr.ok()) return addr.error();
    // A socket left by an earlier run is replaced; a regular file or directory is not ours.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return make_error(EEXIST, "vsock: '" + path + "' exists and is not a socket; pick another path");
        ::unlink(path.c_str());
    }
    std::shared_ptr<VsockUnixBridge> b(new VsockUnixBridge(env, &dev, std::move(path), guest_port));
    b->listener_ = stream_socket();
    if (!b->listener_.valid()) return errno_error("vsock: socket");
    if (::bind(b->listener_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
        ::listen(b->listener_.get(), 64) != 0) {
        Error e = errno_error("vsock: listen on '" + b->path_ + "'");
        b->listener_.reset();
        return e;
    }
    std::weak_ptr<VsockUnixBridge> weak = b;
    auto w = env.watch(b->listener_.get(), EPOLLIN, [weak](uint32_t) {
        if (auto self = weak.lock()) self->on_accept();
    });
    if (!w.ok()) return w.error();
    return b;
}

VsockUnixBridge::~VsockUnixBridge() {
    for (auto& [id, p] : pipes_)
        if (p.watched) env_.unwatch(p.fd.get());
    if (listener_.valid()) {
        env_.unwatch(listener_.get());
        ::unlink(path_.c_str());
    }
}

VsockUnixBridge::Pipe* VsockUnixBridge::find(VsockStream& stream) {
    auto it = ids_.find(&stream);
    return it == ids_.end() ? nullptr : &pipes_.at(it->second);
}

void VsockUnixBridge::add_pipe(UniqueFd fd, VsockStream& stream, bool connected) {
    uint64_t id = next_id_++;
    Pipe& p = pipes_[id];
    p.fd = std::move(fd);
    p.stream = &stream;
    p.connected = connected;
    p.reading = connected;
    ids_[&stream] = id;
    update_watch(id, p);
}

void VsockUnixBridge::on_accept() {
    for (;;) {
        UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!client.valid()) return;  // EAGAIN: all taken; anything else: try on the next wakeup
        auto stream = dev_->connect(guest_port_, shared_from_this());
        if (!stream.ok()) continue;  // no driver yet or too many streams: the client sees EOF
        // Nothing is read from the client until the guest accepts (on_connect).
        add_pipe(std::move(client), **stream, false);
    }
}

void VsockUnixBridge::on_connect(VsockStream& stream) {
    if (Pipe* p = find(stream)) {  // host-initiated: the guest accepted
        p->connected = true;
        p->reading = true;
        update_watch(ids_[&stream], *p);
        return;
    }
    // Guest-initiated: connect to the host socket now. A unix connect completes at once or
    // fails at once (EAGAIN: the listener's backlog is full).
    auto addr = unix_address(path_);
    UniqueFd fd = stream_socket();
    if (!addr.ok() || !fd.valid() ||
        ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
        stream.close();
        return;
    }
    add_pipe(std::move(fd), stream, true);
}

void VsockUnixBridge::on_data(VsockStream& stream, std::span<const uint8_t> bytes) {
    auto it = ids_.find(&stream);
    if (it == ids_.end()) {
        stream.consumed(bytes.size());  // nobody to give them to
        return;
    }
    // The guest cannot send past its window, so the backlog stays below one window
    // (VsockDevice::kBufAlloc): nothing more is credited until the socket takes bytes.
    // flush_backlog never drops the pipe, so `p` stays valid.
    const uint64_t id = it->second;
    Pipe& p = pipes_.at(id);
    p.backlog.insert(p.backlog.end(), bytes.begin(), bytes.end());
    flush_backlog(p);
    update_watch(id, p);
}

void VsockUnixBridge::on_close(VsockStream& stream) {
    auto it = ids_.find(&stream);
    if (it == ids_.end()) return;
    uint64_t id = it->second;
    ids_.erase(it);
    auto p = pipes_.find(id);
    if (p == pipes_.end()) return;
    Pipe& pipe = p->second;
    pipe.stream = nullptr;
    pipe.reading = false;
    // Bytes the guest sent before it closed still go out, as close(2) of a socket with unsent
    // data would: the socket stays open (watched for EPOLLOUT only) until the unix peer has
    // taken them, then closes, so the peer reads everything and then EOF. A guest could
    // leave one window behind per connection and open the next, so only kMaxLingering
    // sockets wait like that; beyond them the rest is dropped.
    if (!pipe.backlog.empty()) flush_backlog(pipe);
    if (pipe.backlog.empty() || lingering_ >= kMaxLingering) {
        drop(id);
        return;
    }
    ++lingering_;
    pipe.lingering = true;
    update_watch(id, pipe);
}

void VsockUnixBridge::on_drained(VsockStream& stream) {
    if (Pipe* p = find(stream)) {
        p->reading = true;
        uint64_t id = ids_[&stream];
        update_watch(id, *p);
        pump_to_guest(id, *p);  // a level-triggered watch would also get here; this is sooner
    }
}

void VsockUnixBridge::on_socket(uint64_t id, uint32_t events) {
    auto it = pipes_.find(id);
    if (it == pipes_.end()) return;
    Pipe& p = it->second;
    if ((events & EPOLLOUT) && !p.backlog.empty()) flush_backlog(p);
    if (p.stream == nullptr) {
        // A lingering pipe (on_close): done once its backlog is out or its peer is gone.
        if (p.backlog.empty() || (events & (EPOLLHUP | EPOLLERR))) drop(id);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) pump_to_guest(id, p);
    if (pipes_.contains(id)) update_watch(id, pipes_.at(id));
}

void VsockUnixBridge::pump_to_guest(uint64_t id, Pipe& p) {
    if (!p.connected || !p.reading || p.stream == nullptr) return;
    std::vector<uint8_t> buf(kReadChunk);
    for (;;) {
        // Back-pressure: stop reading while the guest is behind; on_drained resumes.
        if (p.stream->pending() > VsockStream::kDrainedBytes && p.stream->notify_when_drained()) {
            p.reading = false;
            return;
        }
        ssize_t n = ::read(p.fd.get(), buf.data(), buf.size());
        if (n > 0) {
            if (!p.stream->send(std::span(buf.data(), static_cast<size_t>(n)))) {
                drop(id);  // the stream is gone (reset); on_close follows
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        // EOF or an error: the host side is done. The guest gets our SHUTDOWN once what is
        // queued has gone out.
        p.reading = false;
        p.stream->close();
        return;
    }
}

void VsockUnixBridge::flush_backlog(Pipe& p) {
    size_t done = 0;
    while (done < p.backlog.size()) {
        ssize_t n = ::send(p.fd.get(), p.backlog.data() + done, p.backlog.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        // The host peer is gone: what it did not take is dropped, and the guest hears RST-free
        // SHUTDOWN through close().
        done = p.backlog.size();
        if (p.stream) p.stream->close();
        p.reading = false;
        break;
    }
    p.backlog.erase(p.backlog.begin(), p.backlog.begin() + static_cast<ptrdiff_t>(done));
    if (done > 0 && p.stream) p.stream->consumed(done);
}

void VsockUnixBridge::update_watch(uint64_t id, Pipe& p) {
    uint32_t want = (p.reading ? uint32_t{EPOLLIN} : 0u) | (p.backlog.empty() ? 0u : uint32_t{EPOLLOUT});
    if (want == p.watched) return;
    if (p.watched) env_.unwatch(p.fd.get());
    p.watched = 0;
    if (want == 0) return;
    std::weak_ptr<VsockUnixBridge> weak = weak_from_this();
    if (env_.watch(p.fd.get(), want, [weak, id](uint32_t ev) {
            if (auto self = weak.lock()) self->on_socket(id, ev);
        }).ok()) {
        p.watched = want;
    } else if (p.stream) {
        p.stream->close();  // cannot serve it
    }
}

void VsockUnixBridge::drop(uint64_t id) {
    auto it = pipes_.find(id);
    if (it == pipes_.end()) return;
    if (it->second.watched) env_.unwatch(it->second.fd.get());
    if (it->second.stream) ids_.erase(it->second.stream);
    if (it->second.lingering) --lingering_;
    pipes_.erase(it);
}

}  // namespace krunlet::devices
