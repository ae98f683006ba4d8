// The host end of the control channel (base/control_protocol.h): it sends
// init the workload and the guest's network setup, receives the exit status
// and the guest's listener reports, and forwards signals.
//
// The class knows nothing of vsock: the VMM feeds it the bytes of the guest's
// connection and gives it a function that sends bytes back, so the protocol
// logic is unit-testable on its own.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>

#include "base/control_protocol.h"
#include "vmm/vm_config.h"

namespace krunlet {

class ControlChannel {
public:
    using Send = std::function<bool(std::span<const uint8_t>)>;
    using OnExit = std::function<void(int code)>;
    // A guest "listen" (addr set, a dotted quad) or "unlisten" (addr empty)
    // that passed the checks: port 1..65535.
    struct ListenerEvent {
        uint16_t port = 0;
        std::string addr;
    };
    using OnListener = std::function<void(const ListenerEvent&)>;

    // `tty`: whether the caller's console is a terminal (init then leaves
    // the guest console cooked; otherwise it makes it raw so output is
    // byte-exact).
    ControlChannel(Workload workload, bool tty, OnExit on_exit);

    // Before the guest connects: the exec message's "net" (eth0's static
    // setup) and, with a handler, "mirror_ports". Without a call the exec
    // message has neither (init falls back to slirp's layout and reports no
    // listeners).
    void set_network(const NetConfig& net, OnListener on_listener);

    // The guest connected: send it the exec message.
    void on_connect(Send send);
    // Bytes from the guest. A malformed stream closes the channel.
    void on_data(std::span<const uint8_t> bytes);
    void on_close();

    // Forward a signal to the workload; false when nobody is connected.
    bool send_signal(int signo);

    // The exec message as JSON text (exposed for tests).
    std::string exec_message() const;
    bool connected() const { return static_cast<bool>(send_); }
    std::optional<int> exit_code() const { return exit_code_; }

private:
    Workload workload_;
    bool tty_;
    OnExit on_exit_;
    Send send_;
    control::Decoder decoder_;
    std::optional<int> exit_code_;
    std::optional<NetConfig> net_;
    OnListener on_listener_;
};

}  // namespace krunlet
